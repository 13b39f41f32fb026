"""A key ceremony backup of an installation with Bitcoin wallets: their keys are in it, and each
wallet with its owners and threshold (restore makes it again: test_bitcoin_restore.py);
`ceremony verify` reports a Bitcoin wallet made after the backup."""

from __future__ import annotations

import json

import pytest

from custody.hsm import Algorithm, Backup, DevToken
from custody.keys import service as key_service
from custody.wallets import repository as wallet_repository
from custody.wallets import service as wallet_service
from tests.e2e.process import custody_env, ok_json, run_custody
from tests.support.cli import invoke
from tests.support.installation import Installation, InstallationFactory

pytestmark = pytest.mark.slow


def test_backup_and_verify_with_a_bitcoin_wallet(
    installations: InstallationFactory,
    hsm_dev_token: DevToken,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    inst = installations.make("sqlite")
    try:
        labels = []
        for n in range(2):
            label = f"btc-cer-{n}-{inst.home.name}"
            info = inst.runtime.token().generate_key(
                label, Algorithm.SECP256K1, backup=Backup.TRUSTED_WRAP
            )
            with inst.runtime.db.write() as session:
                key_service.record_key(
                    session, info=info, token=inst.settings.hsm_token or "",
                    backup=Backup.TRUSTED_WRAP, actor="test",
                )  # fmt: skip
            labels.append(label)
        with inst.runtime.db.write() as session:
            wallet_service.create_bitcoin_wallet(
                session, name="vault", chain_name="regtest", owner_labels=labels, threshold=2,
                actor="test",
            )  # fmt: skip
        folder = tmp_path_factory.mktemp("btc-backup") / "backup"
        env = custody_env(inst.env, CUSTODY_HSM_SO_PIN_FILE=str(hsm_dev_token.pin_file))
        args = ["ceremony", "backup", str(folder), "--shares", "3", "--threshold", "2", "--json"]
        ok_json(run_custody(args, env))
        manifest = json.loads((folder / "manifest.json").read_text())
        assert {k["label"] for k in manifest["keys"]} == set(labels)
        assert all(k["wallets"] == [] for k in manifest["keys"])
        (vault,) = manifest["bitcoin_wallets"]
        assert (vault["name"], vault["threshold"]) == ("vault", 2)
        assert [o["label"] for o in vault["owners"]] == labels
        verified = invoke(["ceremony", "verify", str(folder), "--json"], inst.env)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert json.loads(verified.stdout)["wallets"] == ["vault"]
        # A Bitcoin wallet made after the backup on its keys is one the backup lacks.
        with inst.runtime.db.write() as session:
            wallet_service.create_bitcoin_wallet(
                session, name="later", chain_name="regtest", owner_labels=labels[:1],
                threshold=None, actor="test",
            )  # fmt: skip
        verified = invoke(["ceremony", "verify", str(folder), "--json"], inst.env)
        assert verified.returncode == 1
        assert [p for p in json.loads(verified.stdout)["problems"] if "later" in p] == [
            f"wallet 'later' (regtest, {_address(inst, 'later')}) is not in this backup as it "
            "is here: make a new backup"
        ]
    finally:
        installations.discard(inst)


def _address(inst: Installation, name: str) -> str:
    with inst.runtime.db.read() as session:
        return wallet_repository.wallet_by_name(session, name).address
