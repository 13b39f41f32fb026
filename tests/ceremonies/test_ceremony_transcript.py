"""Every ceremony saves a transcript (JSON and text) under CUSTODY_HOME/ceremonies, a backup's
also in its folder, never with a share; the ledger records each transcript's SHA-256."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.ceremonies.conftest import Source
from tests.e2e.process import ok_json as ok_process_json
from tests.e2e.process import run_custody
from tests.support.cli import invoke, ok_json
from tests.support.installation import InstallationFactory


def ledger_transcripts(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT entry FROM ledger_entries WHERE kind = 'ceremony.transcript'"
        ).fetchall()
    return [json.loads(row[0])["data"] for row in rows]


def check_saved(home: Path, saved: dict[str, Any], kind: str) -> dict[str, Any]:
    path = Path(saved["path"])
    assert path.parent == home / "ceremonies"
    assert path.name.endswith(f"-{kind}.json")
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == saved["sha256"]
    text = path.with_suffix(".txt").read_text()
    assert saved["sha256"] in text
    assert f"custody key ceremony: {kind}" in text
    body: dict[str, Any] = json.loads(data)
    assert body["format"] == "custody.ceremony_transcript.v1"
    assert body["ceremony"] == kind
    assert body["actor"].startswith("operator:")
    assert body["steps"]
    assert all("time" in step for step in body["steps"])
    return body


@pytest.mark.slow
def test_a_backup_transcript_is_saved_twice_ledgered_and_holds_no_share(source: Source) -> None:
    saved = source.made["transcript"]
    body = check_saved(source.home, saved, "backup")
    in_folder = source.backup / "transcript.json"
    assert in_folder.read_bytes() == Path(saved["path"]).read_bytes()
    assert (source.backup / "transcript.txt").is_file()
    steps = {step["step"]: step for step in body["steps"]}
    recorded = steps["ledger entry ceremony.backup recorded"]
    assert recorded["ledger_index"] == source.made["ledger_index"]
    folder_step = steps["backup folder written"]
    assert folder_step["manifest_sha256"] == source.made["manifest_sha256"]
    everything = in_folder.read_text() + (source.backup / "transcript.txt").read_text()
    for share in source.shares:
        assert " ".join(share.split()[4:8]) not in everything
    entries = ledger_transcripts(source.home / "custody.db")
    assert {"ceremony": "backup", "file": Path(saved["path"]).name, "sha256": saved["sha256"]} in (
        entries
    )


@pytest.mark.slow
def test_verify_saves_a_transcript_of_what_it_found(source: Source) -> None:
    answer = ok_process_json(
        run_custody(["ceremony", "verify", str(source.backup), "--json"], source.env)
    )
    body = check_saved(source.home, answer["transcript"], "verify")
    (step,) = body["steps"]
    assert step["whole"] is True
    assert step["manifest_sha256"] == source.made["manifest_sha256"]


def test_retire_and_rotate_save_transcripts(installations: InstallationFactory) -> None:
    inst = installations.make("sqlite")
    try:
        inst.allow_all_policy()
        wallet = inst.wallet()
        retired = ok_json(
            invoke(
                ["keys", "retire", wallet.key_label, "--yes", "--force-no-backup", "--json"],
                inst.env,
            )
        )
        body = check_saved(inst.home, retired["transcript"], "retire")
        assert [s["step"] for s in body["steps"]] == [
            "retirement checked and confirmed",
            "ledger entry key.retired recorded",
            "key pair destroyed on the token",
        ]
        rotated = ok_json(invoke(["ledger", "rotate-key", "--json"], inst.env))
        body = check_saved(inst.home, rotated["transcript"], "rotate-key")
        assert body["steps"][1]["ledger_index"] == rotated["ledger_index"]
        digests = {e["data"]["sha256"] for e in inst.ledger_entries("ceremony.transcript")}
        assert digests == {retired["transcript"]["sha256"], rotated["transcript"]["sha256"]}
    finally:
        installations.discard(inst)
