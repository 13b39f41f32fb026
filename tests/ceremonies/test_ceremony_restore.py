"""`custody ceremony restore` into installations on the session token, in this process: a
withdrawal signed by the restored key recovers to the backed-up address; every bad input (too
few shares, a wrong one, an altered blob or manifest) is refused with one line naming it, and
leaves no key on the token and no row in the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import func, select

from custody.app import create_app
from custody.hsm import DevToken, Pkcs11Token, read_pin_file
from custody.signing.worker import SignerWorker
from custody.store.models import Key, KeyBackup, LedgerEntry, Wallet
from tests.ceremonies.conftest import Source, copy_backup, count_objects, forged_share
from tests.support.api import Api, withdrawal
from tests.support.cli import invoke, ok_json
from tests.support.installation import Installation, InstallationFactory

pytestmark = pytest.mark.slow  # the backup is made by `custody` processes, once per session


@pytest.fixture(scope="module")
def token(hsm_dev_token: DevToken) -> Iterator[Pkcs11Token]:
    pin = read_pin_file(hsm_dev_token.pin_file)
    with Pkcs11Token(hsm_dev_token.module_path, hsm_dev_token.label, pin) as opened:
        yield opened


def _restore(inst: Installation, folder: Path, shares: list[str], *extra: str) -> Any:
    stdin = "".join(f"{share}\n" for share in shares)
    return invoke(["ceremony", "restore", str(folder), *extra], inst.env, stdin=stdin)


def _rows(inst: Installation) -> dict[str, int]:
    with inst.runtime.db.read() as session:
        return {
            model.__tablename__: session.execute(
                select(func.count()).select_from(model)
            ).scalar_one()
            for model in (Key, Wallet, KeyBackup, LedgerEntry)
        }


def test_restored_key_signs_a_withdrawal_from_the_backed_up_address(
    source: Source, installations: InstallationFactory, token: Pkcs11Token
) -> None:
    inst = installations.make("sqlite")  # the keys land on the session token: one backend
    try:
        three = [source.shares[4], source.shares[1], source.shares[2]]
        done = ok_json(_restore(inst, source.backup, three, "--json"))
        assert done["shares_used"] == [2, 3, 5]
        assert done["manifest_sha256"] == source.made["manifest_sha256"]
        assert [{k: w[k] for k in ("name", "chain", "address")} for w in done["wallets"]] == (
            source.wallets
        )
        listed = ok_json(invoke(["wallets", "list", "--json"], inst.env))
        assert [w for w in listed if w["key"] == source.key] == [
            {**w, "key": source.key} for w in source.wallets
        ]
        keys = {k["label"]: k for k in ok_json(invoke(["keys", "list", "--json"], inst.env))}
        assert keys[source.key]["backup"] == "trusted-wrap"
        assert keys[source.key]["last_backup"]["manifest_sha256"] == done["manifest_sha256"]
        assert source.cold not in keys
        assert token.private_key_value_readable(source.key) is False
        kinds = [e["kind"] for e in inst.ledger_entries()[-6:]]
        assert kinds == [
            "ceremony.restore",
            "key.restored",
            "wallet.created",
            "wallet.created",
            "configuration.sealed",
            "ceremony.transcript",
        ]
        # The folder this installation's keys came from is a backup of them: verify says so.
        verified = ok_json(invoke(["ceremony", "verify", str(source.backup), "--json"], inst.env))
        assert (verified["ok"], verified["problems"]) == (True, [])
        recorded = json.dumps(inst.ledger_entries())
        assert all(" ".join(share.split()[4:8]) not in recorded for share in source.shares)

        inst.allow_all_policy()
        with HttpClient(create_app(inst.runtime, run_worker=False)) as http:
            api = Api(http.request, inst.client())
            wallet = source.wallets[0]
            created = api.create(withdrawal(wallet["name"], amount="5", nonce=0))
            assert created.status_code == 201, created.text
            assert SignerWorker(inst.runtime, worker_id="restored").drain() == 1
            signed = api.get(created.json()["id"]).json()
        assert signed["status"] == "signed", signed
        assert (
            Account.recover_transaction(signed["result"]["raw_transaction"]) == (wallet["address"])
        )
    finally:
        installations.discard(inst)


def _flip_blob(folder: Path, source: Source) -> str:
    blob = folder / "keys" / f"{source.key}.wrapped"
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0x01
    blob.write_bytes(bytes(data))
    return f"keys/{source.key}.wrapped does not match its SHA-256"


def _edit_manifest(folder: Path, source: Source) -> str:
    path = folder / "manifest.json"
    body = json.loads(path.read_text())
    body["keys"][0]["wallets"][0]["name"] = "attacker-named"
    path.write_text(json.dumps(body, indent=2, sort_keys=True))
    return "manifest.json was changed after the backup"


def _swap_blob_and_digest(folder: Path, source: Source) -> str:
    """A changed blob with its digest changed to match: only the manifest's MAC tells."""
    _flip_blob(folder, source)
    path = folder / "manifest.json"
    body = json.loads(path.read_text())
    body["keys"][0]["blob_sha256"] = hashlib.sha256(
        (folder / body["keys"][0]["blob"]).read_bytes()
    ).hexdigest()
    path.write_text(json.dumps(body, indent=2, sort_keys=True))
    return "manifest.json was changed after the backup"


def _remove_blob(folder: Path, source: Source) -> str:
    (folder / "keys" / f"{source.key}.wrapped").unlink()
    return f"keys/{source.key}.wrapped is missing"


FOLDER_FAULTS = {
    "flipped blob byte": _flip_blob,
    "edited manifest": _edit_manifest,
    "blob and digest changed": _swap_blob_and_digest,
    "missing blob": _remove_blob,
}


def _share_faults(source: Source) -> dict[str, tuple[list[str], str]]:
    one, two, three = source.shares[:3]
    return {
        "two shares": ([one, two], "this backup needs 3 shares"),
        "one share twice": ([one, two, one], "the same share was given twice"),
        "misspelt word": ([one, two, _misspelt(three)], "share 3 is not a valid SLIP-39 share"),
        "share of another backup": (
            [one, two, _foreign_share()],
            "share 3 belongs to another backup",
        ),
        "forged share": ([one, two, forged_share(three)], "the shares do not fit together"),
    }


def _misspelt(share: str) -> str:
    words = share.split()
    words[10] = "academic" if words[10] != "academic" else "acid"  # both SLIP-39 words
    return " ".join(words)


def _foreign_share() -> str:
    from custody.ceremonies import kek

    return kek.split(kek.new_kek(), shares=5, threshold=3).shares[0]


def _refused(source: Source, result: Any, expected: str) -> None:
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    for share in source.shares:  # no share, nor any of its words beyond the first few, leaks
        assert share not in result.stderr
        assert " ".join(share.split()[4:8]) not in result.stderr


@pytest.mark.parametrize("fault", sorted(FOLDER_FAULTS))
def test_an_altered_backup_folder_is_refused_and_nothing_imported(
    source: Source,
    fresh_installation: Installation,
    token: Pkcs11Token,
    hsm_dev_token: DevToken,
    tmp_path: Path,
    fault: str,
) -> None:
    folder = copy_backup(source, tmp_path / "backup")
    expected = FOLDER_FAULTS[fault](folder, source)
    before, objects = _rows(fresh_installation), count_objects(hsm_dev_token)
    result = _restore(fresh_installation, folder, source.shares[:3])
    _refused(source, result, expected)
    assert _rows(fresh_installation) == before
    assert count_objects(hsm_dev_token) == objects


@pytest.mark.parametrize(
    "fault",
    ["two shares", "one share twice", "misspelt word", "share of another backup", "forged share"],
)
def test_wrong_shares_are_refused_and_nothing_imported(
    source: Source,
    fresh_installation: Installation,
    token: Pkcs11Token,
    hsm_dev_token: DevToken,
    fault: str,
) -> None:
    shares, expected = _share_faults(source)[fault]
    before, objects = _rows(fresh_installation), count_objects(hsm_dev_token)
    result = _restore(fresh_installation, source.backup, shares)
    _refused(source, result, expected)
    assert _rows(fresh_installation) == before
    assert count_objects(hsm_dev_token) == objects


def test_a_wallet_name_taken_here_refuses_the_whole_restore(
    source: Source,
    fresh_installation: Installation,
    token: Pkcs11Token,
    hsm_dev_token: DevToken,
) -> None:
    fresh_installation.wallet(name=source.wallets[1]["name"])
    before, objects = _rows(fresh_installation), count_objects(hsm_dev_token)
    result = _restore(fresh_installation, source.backup, source.shares[2:])
    expected = f"wallet {source.wallets[1]['name']!r} already exists"
    _refused(source, result, expected)
    assert _rows(fresh_installation) == before
    assert count_objects(hsm_dev_token) == objects
