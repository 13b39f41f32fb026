"""Entries that no signed checkpoint covers (issue 9, §2.2 and §2.3).

Nothing proves that an unsigned entry is the one custody wrote: whoever can edit the database (or
an export) can append, rewrite or remove it. `verify` therefore fails on a ledger without any
checkpoint and on an unsigned tail older than the checkpoint schedule allows, and the export
verifiers fail on any entry after the last signed checkpoint, unless `--allow-unsigned-tail`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from custody.ledger import service as ledger
from custody.ledger.checkpoints import runtime_identity
from custody.ledger.export import export
from custody.ledger.verify import verify_export
from tests.ledger.conftest import (
    attacker,
    checkpoint,
    entry_bytes,
    grow,
    key,
    verify_db,
    without_checkpoints,
)
from tests.support.cli import CliResult, Finished, invoke
from tests.support.installation import Installation

VERIFY_PY = Path(__file__).parents[2] / "custody" / "ledger" / "verify.py"


def size_of(inst: Installation) -> int:
    with inst.runtime.db.read() as session:
        return ledger.size(session)


def verify_cli(inst: Installation, *args: str) -> CliResult:
    return invoke(["ledger", "verify", *args], inst.env)


def one_error_line(result: Finished) -> str:
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    return lines[0]


# -- the database: `custody ledger verify` ---------------------------------------------------------


def test_a_ledger_without_any_checkpoint_fails_verify(fresh: Installation) -> None:
    without_checkpoints(fresh)
    grow(fresh, 5)
    size = size_of(fresh)
    line = one_error_line(verify_cli(fresh))
    assert "no signed checkpoint" in line
    assert "--allow-unsigned-tail" in line
    machine = verify_cli(fresh, "--json")
    assert machine.returncode != 0
    report = json.loads(machine.stdout)
    assert report["ok"] is False
    assert "no signed checkpoint" in report["fault"]
    assert report["signed_size"] == 0
    assert report["unsigned_tail"] == size
    allowed = verify_cli(fresh, "--json", "--allow-unsigned-tail")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["unsigned_tail"] == size


def test_removing_every_checkpoint_makes_verify_fail(fresh: Installation) -> None:
    grow(fresh, 5)
    checkpoint(fresh)
    assert verify_db(fresh) is None
    attacker(fresh, "DELETE FROM ledger_checkpoints")
    fault = verify_db(fresh)
    assert fault is not None
    assert "no signed checkpoint" in fault


def test_a_recent_unsigned_tail_is_normal(fresh: Installation) -> None:
    """The checkpointer signs every few seconds: the newest entries may wait for it."""
    grow(fresh, 5)
    signed = int(checkpoint(fresh).split("\n")[1])
    grow(fresh, 3)
    verified = verify_cli(fresh, "--json")
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] is True
    assert report["signed_size"] == signed
    assert report["unsigned_tail"] == 3
    human = verify_cli(fresh)
    assert human.returncode == 0, human.stderr
    assert "3 newest entries not yet covered by a checkpoint" in human.stdout


def test_an_unsigned_tail_older_than_the_schedule_fails(fresh: Installation) -> None:
    from custody.ledger.check import TailRule, check

    grow(fresh, 5)
    signed = int(checkpoint(fresh).split("\n")[1])
    grow(fresh, 3)
    k = key(fresh)
    later = datetime.now(UTC) + timedelta(minutes=5)
    with fresh.runtime.db.read() as session:
        assert check(session, k).ok  # seconds old
        late = check(session, k, tail=TailRule(max_age=timedelta(seconds=60), now=later))
        allowed = check(session, k, tail=TailRule(allow=True, now=later))
    assert late.fault is not None
    assert f"entries {signed} to {signed + 2}" in late.fault
    assert "not covered by a signed checkpoint" in late.fault
    assert allowed.ok
    assert allowed.signed_size == signed
    # the same through the CLI, with the allowance made explicit
    line = one_error_line(verify_cli(fresh, "--max-unsigned-age", "0"))
    assert f"entries {signed} to {signed + 2}" in line
    assert verify_cli(fresh, "--max-unsigned-age", "0", "--allow-unsigned-tail").returncode == 0


def test_a_deleted_newest_checkpoint_is_noticed_once_its_entries_are_old(
    fresh: Installation,
) -> None:
    """Removing the newest checkpoints (to rewrite what they covered) leaves an old tail."""
    from custody.ledger.check import TailRule, check

    grow(fresh, 5)
    checkpoint(fresh)
    grow(fresh, 5)
    newest = int(checkpoint(fresh).split("\n")[1])
    attacker(fresh, f"DELETE FROM ledger_checkpoints WHERE tree_size = {newest}")
    with fresh.runtime.db.read() as session:
        report = check(
            session, key(fresh), tail=TailRule(now=datetime.now(UTC) + timedelta(hours=1))
        )
    assert report.fault is not None
    assert "not covered by a signed checkpoint" in report.fault


# -- exports: the standalone verifier and `custody ledger verify --export` ----------------------


def exported_with_extra_entries(inst: Installation, directory: Path, extra: int) -> int:
    """An honest export, then `extra` well-formed entries appended to it: nothing signs them."""
    grow(inst, 5)
    signed = int(checkpoint(inst).split("\n")[1])
    with inst.runtime.db.read() as session:
        export(session, directory, runtime_identity(inst.runtime).verifier_key)
    grow(inst, extra)
    with (directory / "entries.jsonl").open("ab") as handle:
        for index in range(signed, signed + extra):
            handle.write(entry_bytes(inst, index) + b"\n")
    return signed


def standalone(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    copy = directory.parent / "auditor" / "verify.py"
    copy.parent.mkdir(exist_ok=True)
    shutil.copy(VERIFY_PY, copy)
    return subprocess.run(
        [sys.executable, "-I", str(copy), str(directory), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=copy.parent,
    )


def test_an_honest_export_has_no_unsigned_tail(fresh: Installation, tmp_path: Path) -> None:
    """An export stops at its newest checkpoint (the CLI signs one first): nothing unsigned."""
    grow(fresh, 5)
    signed = int(checkpoint(fresh).split("\n")[1])
    grow(fresh, 2)
    with fresh.runtime.db.read() as session:
        export(session, tmp_path / "export", runtime_identity(fresh.runtime).verifier_key)
    report = verify_export(tmp_path / "export")
    assert report.ok, report.faults
    assert report.signed_size == report.size == signed
    exported = invoke(["ledger", "export", str(tmp_path / "cli")], fresh.env)
    assert exported.returncode == 0, exported.stderr
    report = verify_export(tmp_path / "cli")
    assert report.ok, report.faults
    assert report.signed_size == report.size == signed + 2


def test_export_entries_after_the_last_checkpoint_are_refused(
    fresh: Installation, tmp_path: Path
) -> None:
    directory = tmp_path / "export"
    signed = exported_with_extra_entries(fresh, directory, 2)
    report = verify_export(directory)
    assert not report.ok
    assert report.signed_size == signed
    assert report.size == signed + 2
    assert f"entries {signed} to {signed + 1}" in report.faults[0]
    assert "after the last signed checkpoint" in report.faults[0]
    assert verify_export(directory, allow_unsigned_tail=True).ok

    refused = standalone(directory)
    assert refused.returncode == 1, refused.stdout
    assert "after the last signed checkpoint" in refused.stderr
    assert "--allow-unsigned-tail" in refused.stderr
    accepted = standalone(directory, "--allow-unsigned-tail")
    assert accepted.returncode == 0, accepted.stderr
    assert "2 entries after the last signed checkpoint are unverified" in accepted.stdout

    line = one_error_line(verify_cli(fresh, "--export", str(directory)))
    assert "after the last signed checkpoint" in line
    machine = verify_cli(fresh, "--export", str(directory), "--json")
    assert machine.returncode != 0
    assert json.loads(machine.stdout)["unsigned_tail"] == 2
    allowed = verify_cli(fresh, "--export", str(directory), "--allow-unsigned-tail", "--json")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["signed_size"] == signed


def test_an_export_with_no_checkpoint_history_still_counts_its_checkpoint(
    fresh: Installation, tmp_path: Path
) -> None:
    """`checkpoints.jsonl` is optional; the `checkpoint` file alone covers its size."""
    directory = tmp_path / "export"
    grow(fresh, 5)
    checkpoint(fresh)
    with fresh.runtime.db.read() as session:
        export(session, directory, runtime_identity(fresh.runtime).verifier_key)
    (directory / "checkpoints.jsonl").unlink()
    report = verify_export(directory)
    assert report.ok, report.faults
    assert report.signed_size == report.size
