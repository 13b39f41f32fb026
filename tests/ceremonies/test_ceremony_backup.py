"""`custody ceremony backup`: what a backup folder and its ledger entry hold (made by `custody`
processes with their own token, tests/ceremonies/conftest.py), and the refusals that come before
anything is written."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import stat
from pathlib import Path

import pytest
import shamir_mnemonic
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from custody.hsm import Backup
from custody.ledger.canonical import canonical_bytes
from tests.ceremonies.conftest import Source
from tests.e2e.process import custody_env, run_custody
from tests.support.cli import invoke
from tests.support.installation import Installation, InstallationFactory


@pytest.mark.slow
def test_the_folder_holds_every_backup_able_key_and_says_why_others_are_not(
    source: Source,
) -> None:
    manifest = source.manifest
    assert manifest["format"] == "custody.backup.v1"
    assert manifest["wrapping"] == "CKM_AES_KEY_WRAP_PAD"
    assert [c["name"] for c in manifest["custodians"]] == ["ann", "bo", "cy", "di", "ed"]
    assert {k: manifest["shares"][k] for k in ("scheme", "threshold", "count")} == {
        "scheme": "slip39",
        "threshold": 3,
        "count": 5,
    }
    (key,) = manifest["keys"]
    assert key["label"] == source.key
    assert [{k: w[k] for k in ("name", "chain", "address")} for w in key["wallets"]] == (
        source.wallets
    )
    excluded = {item["label"]: item["reason"] for item in manifest["not_included"]}
    assert "never extractable" in excluded[source.cold]
    assert "Ed25519" in excluded["ledger"]
    blob = source.backup / key["blob"]
    assert key["blob"] == f"keys/{source.key}.wrapped"
    assert len(blob.read_bytes()) == 72  # RFC 5649 over SoftHSM's 64-byte PKCS#8 form
    assert sorted(p.name for p in source.backup.iterdir()) == [
        "keys",
        "manifest.json",
        "transcript.json",
        "transcript.txt",
    ]
    for path in (source.backup, source.backup / "keys"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    for path in (source.backup / "manifest.json", blob):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.slow
def test_the_ledger_records_the_manifest_digest_and_never_a_share(source: Source) -> None:
    with sqlite3.connect(source.home / "custody.db") as db:
        rows = db.execute(
            "SELECT entry FROM ledger_entries WHERE kind = 'ceremony.backup'"
        ).fetchall()
        backed_up = db.execute(
            "SELECT k.label, b.manifest_sha256 FROM key_backups b JOIN keys k ON k.id = b.key_id"
        ).fetchall()
        everything = b"".join(row[0] for row in db.execute("SELECT entry FROM ledger_entries"))
    (entry,) = [json.loads(row[0]) for row in rows]
    digest = source.made["manifest_sha256"]
    assert digest == hashlib.sha256((source.backup / "manifest.json").read_bytes()).hexdigest()
    assert entry["data"]["manifest_sha256"] == digest
    assert entry["data"]["keys"] == [source.key]
    assert entry["data"]["custodians"] == ["ann", "bo", "cy", "di", "ed"]
    assert backed_up == [(source.key, digest)]
    for share in source.shares:
        assert " ".join(share.split()[4:8]).encode() not in everything


@pytest.mark.slow
def test_the_manifest_is_authenticated_under_the_rebuilt_kek(source: Source) -> None:
    """The MAC in the manifest is checkable by anyone holding a quorum, with standard tools."""
    kek = shamir_mnemonic.combine_mnemonics(source.shares[1:4])
    body = source.manifest
    mac = body.pop("mac")
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"custody.backup.v1 manifest mac"
    ).derive(kek)
    assert hmac.new(key, canonical_bytes(body), "sha256").hexdigest() == mac


def _refused(inst: Installation, args: list[str], expected: str, tmp_path: Path) -> None:
    before = inst.counts()
    result = invoke(["ceremony", "backup", *args], inst.env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert inst.counts() == before
    assert not (tmp_path / "new").exists()


COUNTS = {
    "no shares": (["--shares", "0", "--threshold", "0"], "--shares must be between 1 and 16"),
    "17 shares": (["--shares", "17", "--threshold", "2"], "--shares must be between 1 and 16"),
    "threshold above shares": (["--shares", "3", "--threshold", "4"], "--threshold must be"),
    "threshold 1 of 3": (["--shares", "3", "--threshold", "1"], "any one custodian"),
    "custodians short": (
        ["--shares", "3", "--threshold", "2", "--custodian", "a", "--custodian", "b"],
        "name one --custodian per share",
    ),
    "custodian name with a line break": (
        ["--shares", "2", "--threshold", "2", "--custodian", "a", "--custodian", "b\nc"],
        "use 1-64 printable characters",
    ),
    "custodian twice": (
        ["--shares", "2", "--threshold", "2", "--custodian", "a", "--custodian", "a"],
        "a name is given twice",
    ),
}


@pytest.mark.parametrize("case", sorted(COUNTS))
def test_shares_and_custodians_out_of_range_are_refused(
    fresh_installation: Installation, tmp_path: Path, case: str
) -> None:
    args, expected = COUNTS[case]
    _refused(fresh_installation, [str(tmp_path / "new"), *args, "--json"], expected, tmp_path)


def test_an_installation_without_backup_able_keys_has_nothing_to_back_up(
    fresh_installation: Installation, tmp_path: Path
) -> None:
    fresh_installation.wallet()  # a key made without a backup, as before key ceremonies
    args = [str(tmp_path / "new"), "--shares", "3", "--threshold", "2", "--json"]
    _refused(fresh_installation, args, "nothing to back up", tmp_path)


def test_a_folder_that_is_not_empty_is_refused(
    fresh_installation: Installation, tmp_path: Path
) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("kept")
    args = [str(tmp_path / "taken"), "--shares", "3", "--threshold", "2", "--json"]
    _refused(fresh_installation, args, "is not empty", tmp_path)
    assert (tmp_path / "taken" / "notes.txt").read_text() == "kept"


def test_shares_are_never_printed_into_a_pipe(
    fresh_installation: Installation, tmp_path: Path
) -> None:
    args = [str(tmp_path / "new"), "--shares", "3", "--threshold", "2"]
    _refused(fresh_installation, args, "refusing to write them into a pipe or file", tmp_path)


def test_without_the_security_officer_pin_nothing_is_backed_up(
    fresh_installation: Installation, tmp_path: Path
) -> None:
    fresh_installation.wallet(backup=Backup.TRUSTED_WRAP)
    args = [str(tmp_path / "new"), "--shares", "3", "--threshold", "2", "--json"]
    _refused(fresh_installation, args, "set CUSTODY_HSM_SO_PIN_FILE", tmp_path)


@pytest.mark.slow
def test_a_wrong_security_officer_pin_is_refused_and_never_shown(
    installations: InstallationFactory, tmp_path: Path
) -> None:
    inst = installations.make("sqlite")
    try:
        inst.wallet(backup=Backup.TRUSTED_WRAP)
        wrong = tmp_path / "so-pin"
        wrong.write_text("not-the-so-pin-4711\n")
        wrong.chmod(0o600)
        before = inst.counts()
        args = ["ceremony", "backup", str(tmp_path / "new"), "--shares", "2", "--threshold", "2"]
        result = run_custody(
            [*args, "--json"], custody_env(inst.env, CUSTODY_HSM_SO_PIN_FILE=str(wrong))
        )
        assert result.returncode == 1
        assert result.stderr.strip() == (
            "error: security officer login to HSM token 'custody-test' failed: the SO PIN is "
            "incorrect (check CUSTODY_HSM_SO_PIN or CUSTODY_HSM_SO_PIN_FILE)"
        )
        assert "not-the-so-pin" not in result.stdout + result.stderr
        assert not (tmp_path / "new").exists()
        assert inst.counts() == before
    finally:
        installations.discard(inst)
