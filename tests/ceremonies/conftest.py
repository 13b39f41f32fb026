"""A backup made the way custodians make one: `custody` processes on an installation with a
development token of its own (the security officer cannot log in to the session token from this
process, which is logged in to it as the user). Made once per test session, read by every test.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import PyKCS11
import pytest
import shamir_mnemonic

from custody.hsm import DevToken
from custody.hsm.pkcs11.library import library
from tests.e2e.process import clean_env, ok_json, run_custody_many


@dataclass(frozen=True)
class Source:
    home: Path
    env: dict[str, str]
    backup: Path
    made: dict[str, Any]  # what `ceremony backup --json` printed, shares included
    key: str  # the backup-able key
    cold: str  # a key made with --no-backup
    wallets: list[dict[str, str]]  # name, chain, address

    @property
    def shares(self) -> list[str]:
        return list(self.made["shares"])

    @property
    def manifest(self) -> dict[str, Any]:
        return dict(json.loads((self.backup / "manifest.json").read_text()))


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory) -> Source:
    root = tmp_path_factory.mktemp("ceremony-source")
    home, env = root / "home", clean_env(root / "home")
    tag = secrets.token_hex(4)
    key, cold = f"cer-{tag}", f"cold-{tag}"
    backup = root / "backup"
    custodians = [arg for name in ("ann", "bo", "cy", "di", "ed") for arg in ("--custodian", name)]
    commands = [
        ["init"],
        ["keys", "generate", "--label", key, "--algorithm", "secp256k1"],
        ["keys", "generate", "--label", cold, "--algorithm", "secp256k1", "--no-backup"],
        ["wallets", "create", f"hot-{tag}", "--chain", "ethereum", "--key", key],
        ["wallets", "create", f"hot-sep-{tag}", "--chain", "sepolia", "--key", key],
        ["ceremony", "backup", str(backup), "--shares", "5", "--threshold", "3", *custodians],
    ]
    # One process for the whole set-up: this installation's development token is its own.
    *_, hot, hot_sep, made = [
        ok_json(done) for done in run_custody_many([[*c, "--json"] for c in commands], env)
    ]
    wallets = [hot, hot_sep]
    return Source(
        home=home,
        env=env,
        backup=backup,
        made=made,
        key=key,
        cold=cold,
        wallets=[{k: w[k] for k in ("name", "chain", "address")} for w in wallets],
    )


def copy_backup(source: Source, target: Path) -> Path:
    """A copy of the backup folder to change (the original stays as made)."""
    shutil.copytree(source.backup, target)
    return target


def forged_share(share: str) -> str:
    """A share that passes every check a single share can pass (this backup's identifier, a
    valid checksum) but holds another value: only combining it shows it is wrong."""
    parsed = shamir_mnemonic.Share.from_mnemonic(share)
    other = dataclasses.replace(parsed, value=secrets.token_bytes(len(parsed.value)))
    return str(other.mnemonic())


def count_objects(token: DevToken) -> int:
    """Every object on the session token this process sees while logged in (tests hold a
    logged-in `Pkcs11Token`): key pairs, half-made keys, session objects such as a KEK. Through
    a session of its own."""
    lib = library(token.module_path)
    with lib.lock:
        slot = next(
            s
            for s in lib.pykcs11.getSlotList(tokenPresent=True)
            if lib.pykcs11.getTokenInfo(s).label.rstrip() == token.label
        )
        session = lib.pykcs11.openSession(slot, PyKCS11.CKF_RW_SESSION)
        try:
            return len(session.findObjects([]))
        finally:
            session.closeSession()
