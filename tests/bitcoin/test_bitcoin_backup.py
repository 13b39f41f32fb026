"""A key ceremony backup of an installation with Bitcoin wallets: their keys are in it, and
`ceremony verify` does not ask for the wallets themselves (descriptors are made again from keys)."""

from __future__ import annotations

import json

import pytest

from custody.hsm import Algorithm, Backup, DevToken
from custody.keys import service as key_service
from custody.wallets import service as wallet_service
from tests.e2e.process import custody_env, ok_json, run_custody
from tests.support.cli import invoke
from tests.support.installation import InstallationFactory

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
        verified = invoke(["ceremony", "verify", str(folder), "--json"], inst.env)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        installations.discard(inst)
