"""`custody ceremony verify`: a backup checked without shares, one line per problem.

The backup is made by a `custody` process on the session token (the security officer can log in
there: this process's user login is its own), with the SO PIN from CUSTODY_HSM_SO_PIN_FILE as an
operator of a real HSM would give it; verify runs in this process.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from custody.hsm import Backup, DevToken
from custody.wallets import service as wallet_service
from tests.e2e.process import custody_env, ok_json, run_custody
from tests.support.cli import CliResult, invoke
from tests.support.installation import Installation, InstallationFactory, WalletInfo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backed_up(
    installations: InstallationFactory, hsm_dev_token: DevToken, tmp_path_factory: Any
) -> Iterator[tuple[Installation, Path, WalletInfo]]:
    inst = installations.make("sqlite")
    wallet = inst.wallet(backup=Backup.TRUSTED_WRAP)
    folder = tmp_path_factory.mktemp("verify") / "backup"
    env = custody_env(inst.env, CUSTODY_HSM_SO_PIN_FILE=str(hsm_dev_token.pin_file))
    args = ["ceremony", "backup", str(folder), "--shares", "3", "--threshold", "2", "--json"]
    ok_json(run_custody(args, env))
    try:
        yield inst, folder, wallet
    finally:
        installations.discard(inst)


def _verify(inst: Installation, folder: Path, *extra: str) -> CliResult:
    return invoke(["ceremony", "verify", str(folder), *extra], inst.env)


def _problems(result: CliResult) -> list[str]:
    assert result.returncode == 1, result.stdout + result.stderr
    *lines, saved = result.stdout.strip().splitlines()
    assert saved.startswith("transcript "), saved  # a failed verify is transcribed too
    assert all(line.startswith("problem: ") for line in lines), lines
    return [line.removeprefix("problem: ") for line in lines]


def test_a_fresh_backup_verifies(backed_up: tuple[Installation, Path, WalletInfo]) -> None:
    inst, folder, wallet = backed_up
    report = ok_json(_verify(inst, folder, "--json"))
    assert report["ok"] is True
    assert report["problems"] == []
    assert report["keys"] == [wallet.key_label]
    assert report["wallets"] == [wallet.name]
    (entry,) = inst.ledger_entries("ceremony.backup")
    assert report["ledger_index"] == entry["index"]
    assert report["manifest_sha256"] == entry["data"]["manifest_sha256"]
    human = _verify(inst, folder)
    assert human.returncode == 0
    assert "is whole: 1 keys, 1 wallets" in human.stdout


def test_each_problem_of_an_altered_folder_is_one_line(
    backed_up: tuple[Installation, Path, WalletInfo], tmp_path: Path
) -> None:
    inst, original, wallet = backed_up
    folder = tmp_path / "copy"
    shutil.copytree(original, folder)
    blob = folder / "keys" / f"{wallet.key_label}.wrapped"
    blob.write_bytes(blob.read_bytes()[:-1] + bytes([blob.read_bytes()[-1] ^ 0x80]))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["custodians"][0]["name"] = "someone else"
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))

    problems = _problems(_verify(inst, folder))
    assert len(problems) == 2, problems
    assert "is recorded by no ceremony.backup or ceremony.restore entry" in problems[0]
    assert f"keys/{wallet.key_label}.wrapped does not match its SHA-256" in problems[1]

    blob.unlink()
    assert f"keys/{wallet.key_label}.wrapped is missing" in _problems(_verify(inst, folder))[1]
    (folder / "manifest.json").write_text("{not json")
    assert _problems(_verify(inst, folder)) == [f"{folder / 'manifest.json'} is not valid JSON"]


def test_keys_and_wallets_made_after_the_backup_are_missing_from_it(
    backed_up: tuple[Installation, Path, WalletInfo],
) -> None:
    """Last in this module: it changes the installation the others verify against."""
    inst, folder, wallet = backed_up
    later = inst.wallet(backup=Backup.TRUSTED_WRAP)
    inst.wallet()  # a key without a backup is not expected in any backup
    with inst.runtime.db.write() as session:
        wallet_service.create_wallet(
            session,
            name="same-key-sepolia",
            chain_name="sepolia",
            key_label=wallet.key_label,
            actor="test",
        )
    result = _verify(inst, folder, "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["problems"] == [
        f"key {later.key_label!r} is backup-able but not in this backup: make a new backup",
        f"wallet 'same-key-sepolia' (key {wallet.key_label!r} on sepolia) is not in this "
        "backup: make a new backup",
    ]
