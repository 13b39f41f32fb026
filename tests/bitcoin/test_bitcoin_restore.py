"""`custody ceremony restore` makes a backup's Bitcoin wallets again: a P2WPKH wallet and a 2-of-3
P2WSH `sortedmulti` (two owners on the token, one external cosigner) come back with the same
descriptor and address, and a PSBT request signs on the restored installation. A manifest whose
descriptor or address disagrees is refused with nothing imported; a manifest from before Bitcoin
wallets were recorded restores its keys and EVM wallets and says the Bitcoin ones were not made.

The backup is made by `custody` processes on an installation with a development token of its own
(tests/ceremonies/conftest.py); restores land on the session token.
"""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import shamir_mnemonic
from embit.ec import PrivateKey
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import func, select

from custody.app import create_app
from custody.ceremonies import kek as keks
from custody.ceremonies.manifest import unsigned_bytes
from custody.chains.bitcoin import wallet_script
from custody.hsm import DevToken
from custody.signing.worker import SignerWorker
from custody.store.models import Key, KeyBackup, LedgerEntry, Wallet
from tests.bitcoin.bitcoin_support import BitcoinWallet, body, funding_psbt, verify_independently
from tests.ceremonies.conftest import count_objects
from tests.e2e.process import clean_env, ok_json, run_custody_many
from tests.support.api import Api
from tests.support.cli import CliResult, invoke
from tests.support.installation import Installation, InstallationFactory

pytestmark = pytest.mark.slow  # the backup is made by `custody` processes, once per module

POLICY = (
    "version: 1\nrules:\n  - {id: btc, match: {type: bitcoin_psbt}, action: allow}\n"
    "  - {id: allow-withdrawals, match: {type: withdrawal}, action: allow}\n"
)


@dataclass(frozen=True)
class BtcSource:
    backup: Path
    shares: list[str]
    labels: tuple[str, ...]  # the keys in it
    wallets: dict[str, dict[str, Any]]  # by name, as `wallets list --json` showed them

    def copy(self, target: Path) -> Path:
        shutil.copytree(self.backup, target)
        return target


@pytest.fixture(scope="module")
def btc_source(tmp_path_factory: pytest.TempPathFactory) -> BtcSource:
    root = tmp_path_factory.mktemp("btc-ceremony-source")
    env = clean_env(root / "home")
    tag = secrets.token_hex(4)
    a, b, c = (f"btc-r{n}-{tag}" for n in range(3))
    external = PrivateKey(secrets.token_bytes(32)).get_public_key().sec().hex()
    commands = [
        ["init"],
        *(
            ["keys", "generate", "--label", label, "--algorithm", "secp256k1"]
            for label in (a, b, c)
        ),
        ["wallets", "create", f"single-{tag}", "--chain", "regtest", "--key", a],
        _multisig(f"vault-{tag}", b, a, c),
        _multisig(f"shared-{tag}", b, external, c),
        ["wallets", "create", f"eth-{tag}", "--chain", "ethereum", "--key", c],
        ["wallets", "list"],
        ["ceremony", "backup", str(root / "backup"), "--shares", "3", "--threshold", "2"],
    ]
    *_, listed, made = [
        ok_json(done) for done in run_custody_many([[*cmd, "--json"] for cmd in commands], env)
    ]
    wallets = {w["name"]: w for w in listed}
    return BtcSource(root / "backup", list(made["shares"]), (a, b, c), wallets)


def _multisig(name: str, *owners: str) -> list[str]:
    owned = ["--owners", ",".join(owners), "--threshold", "2"]
    return ["wallets", "create", name, "--chain", "regtest", *owned]


def _restore(inst: Installation, folder: Path, shares: list[str]) -> CliResult:
    stdin = "".join(f"{share}\n" for share in shares)
    return invoke(["ceremony", "restore", str(folder), "--json"], inst.env, stdin=stdin)


def _rows(inst: Installation) -> dict[str, int]:
    with inst.runtime.db.read() as session:
        return {
            model.__tablename__: session.execute(
                select(func.count()).select_from(model)
            ).scalar_one()
            for model in (Key, Wallet, KeyBackup, LedgerEntry)
        }


def _discard(inst: Installation, installations: InstallationFactory, source: BtcSource) -> None:
    """The restored keys off the session token again: the next test restores them too."""
    token = inst.runtime.token()
    on_token = {key.label for key in token.list_keys()}
    for label in set(source.labels) & on_token:
        token.destroy_key(label)
    installations.discard(inst)


def _edit(folder: Path, shares: list[str], change: Any) -> None:
    """Change the manifest and authenticate it again under the KEK, as only the holders of a
    quorum of shares could: what is left to catch it is restore's own re-derivation."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    kek = shamir_mnemonic.combine_mnemonics(shares[:2])
    manifest["mac"] = keks.manifest_mac(kek, unsigned_bytes(manifest))
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True))


def _bitcoin_wallet(manifest: dict[str, Any], prefix: str) -> dict[str, Any]:
    (wallet,) = [w for w in manifest["bitcoin_wallets"] if w["name"].startswith(prefix)]
    return dict(wallet)


def test_the_manifest_records_each_bitcoin_wallets_owners_and_threshold(
    btc_source: BtcSource,
) -> None:
    manifest = json.loads((btc_source.backup / "manifest.json").read_text())
    recorded = {w["name"]: w for w in manifest["bitcoin_wallets"]}
    shown = {n: w for n, w in btc_source.wallets.items() if "descriptor" in w}
    assert set(recorded) == set(shown)
    for name, wallet in recorded.items():
        assert (wallet["address"], wallet["descriptor"]) == (
            shown[name]["address"],
            shown[name]["descriptor"],
        )
        # the owners in the descriptor's order: with the threshold they give the descriptor
        owners = wallet_script(wallet["descriptor"]).owners
        assert [o["public_key"] for o in wallet["owners"]] == [k.hex() for k in owners]
    single = _bitcoin_wallet(manifest, "single-")
    assert single["threshold"] is None
    assert [o["label"] for o in single["owners"]] == [shown[single["name"]]["key"]]
    shared = _bitcoin_wallet(manifest, "shared-")
    assert shared["threshold"] == 2
    assert [o["label"] is None for o in shared["owners"]] == [False, True, False]


def test_restore_makes_the_bitcoin_wallets_again_and_they_sign(
    btc_source: BtcSource, installations: InstallationFactory
) -> None:
    inst = installations.make("sqlite")  # the keys land on the session token: one backend
    try:
        done = ok_json(_restore(inst, btc_source.backup, btc_source.shares[1:]))
        assert done["wallets_not_recreated"] == []
        listed = {w["name"]: w for w in ok_json(invoke(["wallets", "list", "--json"], inst.env))}
        assert {n: listed[n] for n in btc_source.wallets} == btc_source.wallets
        assert {w["name"] for w in done["wallets"]} == set(btc_source.wallets)
        [entry] = inst.ledger_entries("ceremony.restore")
        assert sorted(entry["data"]["wallets"]) == sorted(btc_source.wallets)

        inst.apply_policy(POLICY)
        with HttpClient(create_app(inst.runtime, run_worker=False)) as http:
            api = Api(http.request, inst.client())
            for prefix in ("single-", "vault-"):
                (shown,) = [w for n, w in btc_source.wallets.items() if n.startswith(prefix)]
                wallet = BitcoinWallet(shown["name"], shown["address"], shown["descriptor"], ())
                created = api.create(body(wallet, funding_psbt(wallet)))
                assert created.status_code == 201, created.text
                assert SignerWorker(inst.runtime, worker_id="restored").drain() == 1
                signed = api.get(created.json()["id"]).json()
                assert signed["status"] == "signed", signed
                script = wallet_script(wallet.descriptor).script_pubkey
                verify_independently(
                    signed["result"]["raw_transaction"], [(script, 60_000), (script, 50_000)]
                )
    finally:
        _discard(inst, installations, btc_source)


def _other_address(manifest: dict[str, Any]) -> str:
    vault = _bitcoin_wallet(manifest, "vault-")
    vault["address"] = _bitcoin_wallet(manifest, "single-")["address"]
    manifest["bitcoin_wallets"] = [
        vault if w["name"] == vault["name"] else w for w in manifest["bitcoin_wallets"]
    ]
    return f"wallet {vault['name']!r}: address {vault['address']} does not derive from its"


def _other_threshold(manifest: dict[str, Any]) -> str:
    vault = _bitcoin_wallet(manifest, "vault-")
    for wallet in manifest["bitcoin_wallets"]:
        if wallet["name"] == vault["name"]:
            wallet["threshold"] = 3
    return f"wallet {vault['name']!r}: descriptor {vault['descriptor']} is not the one its owners"


def _other_owner(manifest: dict[str, Any]) -> str:
    shared = _bitcoin_wallet(manifest, "shared-")
    stranger = PrivateKey(secrets.token_bytes(32)).get_public_key().sec().hex()
    for wallet in manifest["bitcoin_wallets"]:
        if wallet["name"] == shared["name"]:
            wallet["owners"][1]["public_key"] = stranger
    return f"wallet {shared['name']!r}: descriptor {shared['descriptor']} is not the one"


DISAGREEMENTS = {"address": _other_address, "threshold": _other_threshold, "owner": _other_owner}


@pytest.mark.parametrize("field", sorted(DISAGREEMENTS))
def test_a_manifest_that_disagrees_with_its_descriptor_imports_nothing(
    btc_source: BtcSource,
    fresh_installation: Installation,
    hsm_dev_token: DevToken,
    tmp_path: Path,
    field: str,
) -> None:
    folder = btc_source.copy(tmp_path / "backup")
    expected: list[str] = []
    _edit(folder, btc_source.shares, lambda m: expected.append(DISAGREEMENTS[field](m)))
    before, objects = _rows(fresh_installation), count_objects(hsm_dev_token)
    result = _restore(fresh_installation, folder, btc_source.shares[:2])
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected[0] in lines[0]
    assert _rows(fresh_installation) == before
    assert count_objects(hsm_dev_token) == objects


def test_a_manifest_from_before_bitcoin_wallets_were_recorded_still_restores(
    btc_source: BtcSource, installations: InstallationFactory, tmp_path: Path
) -> None:
    folder = btc_source.copy(tmp_path / "backup")
    _edit(folder, btc_source.shares, lambda manifest: manifest.pop("bitcoin_wallets"))
    inst = installations.make("sqlite")
    try:
        done = ok_json(_restore(inst, folder, btc_source.shares[:2]))
        evm = {n: w for n, w in btc_source.wallets.items() if "descriptor" not in w}
        assert [w["name"] for w in done["wallets"]] == list(evm)
        [skipped] = done["wallets_not_recreated"]
        assert skipped["name"] is None
        assert "made before backups recorded Bitcoin wallets" in skipped["reason"]
        listed = {w["name"]: w for w in ok_json(invoke(["wallets", "list", "--json"], inst.env))}
        assert {n: listed.get(n) for n in btc_source.wallets} == {
            n: evm.get(n) for n in btc_source.wallets
        }
        [entry] = inst.ledger_entries("ceremony.restore")
        assert entry["data"]["wallets_not_recreated"] == [skipped]
    finally:
        _discard(inst, installations, btc_source)
