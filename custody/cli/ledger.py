"""`custody ledger`: verify, export, checkpoint and publish the append-only ledger."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress

from custody.cli import context
from custody.cli.output import JsonOption, console, emit, err_console
from custody.errors import CustodyError
from custody.ledger.checkpoints import runtime_identity

if TYPE_CHECKING:
    from custody.ledger.check import LedgerReport
    from custody.ledger.verify import KeySchedule, VerifierKey
    from custody.runtime import Runtime

app = typer.Typer(help="The append-only ledger.", no_args_is_help=True)

InFile = Annotated[Path, typer.Option(exists=True, dir_okay=False, readable=True)]


class LedgerFault(CustodyError):
    status = 500
    title = "Ledger verification failed"
    slug = "ledger-fault"


@contextmanager
def _progress(label: str, *, quiet: bool) -> Iterator[Callable[[int], None] | None]:
    if quiet:
        yield None
        return
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(label, total=None)
        yield lambda n: progress.update(task, completed=n, description=f"{label}: {n:,}")


@app.command("verify")
def verify(  # noqa: PLR0917  (Typer maps each parameter to one command-line option)
    export: Annotated[
        Path | None,
        typer.Option(
            "--export",
            file_okay=False,
            exists=True,
            help="Verify an export folder, not the database.",
        ),
    ] = None,
    trusted: Annotated[
        list[Path] | None,
        typer.Option(
            "--trusted-checkpoint",
            exists=True,
            dir_okay=False,
            help="A checkpoint saved earlier; the log must still contain it.",
        ),
    ] = None,
    witness: Annotated[
        Path | None,
        typer.Option(
            "--witness",
            exists=True,
            dir_okay=False,
            help="A witness file written by `custody ledger publish`.",
        ),
    ] = None,
    verifier_key: Annotated[
        Path | None,
        typer.Option(
            "--verifier-key",
            exists=True,
            dir_okay=False,
            help="Trust this verifier key instead of asking the HSM.",
        ),
    ] = None,
    hashes_only: Annotated[
        bool,
        typer.Option(
            "--hashes-only",
            help="Check leaves, roots and signatures, not each entry's JSON form (faster).",
        ),
    ] = False,
    allow_unsigned_tail: Annotated[
        bool,
        typer.Option(
            "--allow-unsigned-tail",
            help="Accept entries that no signed checkpoint covers (reported, not verified).",
        ),
    ] = False,
    max_unsigned_age: Annotated[
        float | None,
        typer.Option(
            "--max-unsigned-age",
            min=0,
            help="Seconds an entry may wait for a checkpoint (database only; default: 10 "
            "checkpoint intervals, at least 60).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Recompute every leaf and root, check every checkpoint; exit non-zero on any fault."""
    from custody.ledger.verify import VerificationError

    checks = _Checks(
        notes=[p.read_text() for p in trusted or []],
        witness=witness,
        verifier_key=verifier_key,
        check_format=not hashes_only,
        allow_unsigned_tail=allow_unsigned_tail,
    )
    try:
        with _progress("verifying entries", quiet=as_json) as progress:
            if export is not None:
                report = _verify_export(export, checks, progress)
            else:
                report = _verify_db(checks, max_unsigned_age, progress)
    except VerificationError as exc:
        raise LedgerFault(f"ledger verification failed: {exc}") from None
    _show(report, as_json=as_json)


@dataclass(frozen=True)
class _Checks:
    """What `verify` was asked to hold the log to, for the database and for an export alike."""

    notes: list[str]
    witness: Path | None
    verifier_key: Path | None
    check_format: bool
    allow_unsigned_tail: bool


def _show(report: LedgerReport, *, as_json: bool) -> None:
    data = {
        "ok": report.ok,
        "size": report.size,
        "root": report.root.hex(),
        "checkpoints": report.checkpoints_checked,
        "signed_size": report.signed_size,
        "unsigned_tail": report.unsigned,
        "fault": report.fault,
    }
    if report.fault is not None:
        message = f"ledger verification failed: {report.fault}"
        if as_json:  # the report is the one JSON document; the diagnosis still goes to stderr
            error = {"message": message, "status": LedgerFault.status}
            emit({**data, "error": error}, as_json=True)
            err_console.print(
                f"[bold red]error:[/bold red] {message}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(1)
        raise LedgerFault(message)
    tail = (
        f"; {report.unsigned} newest entries not yet covered by a checkpoint (unverified)"
        if report.unsigned
        else ""
    )
    emit(
        data,
        as_json=as_json,
        human=f"ledger ok: {report.size} entries, root {report.root.hex()}, "
        f"{report.checkpoints_checked} checkpoints verified{tail}",
    )


def _verify_db(
    checks: _Checks, max_unsigned_age: float | None, progress: Callable[[int], None] | None
) -> LedgerReport:
    from custody.ledger.check import TailRule, check, unsigned_grace
    from custody.ledger.checkpoints import runtime_schedule
    from custody.ledger.verify import parse_checkpoint_at, parse_verifier_key, read_witness

    with context.runtime() as rt:
        if checks.verifier_key is not None:
            key = _pinned_schedule(rt, parse_verifier_key(checks.verifier_key.read_text()))
        else:
            key = runtime_schedule(rt)
        external = [parse_checkpoint_at(n, key) for n in checks.notes]
        if checks.witness is not None:
            external += read_witness(checks.witness, key)
        grace = (
            timedelta(seconds=max_unsigned_age)
            if max_unsigned_age is not None
            else unsigned_grace(rt.settings.checkpoint_interval_seconds)
        )
        with rt.db.read() as session:
            return check(
                session,
                key,
                external=external,
                progress=progress,
                workers=os.cpu_count() or 1,
                check_format=checks.check_format,
                tail=TailRule(allow=checks.allow_unsigned_tail, max_age=grace),
            )


def _pinned_schedule(rt: Runtime, pinned: VerifierKey) -> KeySchedule:
    """The recorded ledger keys when the pinned key is one of them (the rotation entries then
    tie the others to it), else the pinned key alone; the HSM is not asked."""
    from custody.ledger.keys import SigningKey, schedule, signing_keys
    from custody.ledger.verify import KeySchedule

    with rt.db.read() as session:
        first = SigningKey(rt.settings.ledger_key_label, pinned.public_key, 0)
        recorded = schedule(rt.settings.ledger_origin, signing_keys(session, first))
    if pinned in [span.key for span in recorded.spans]:
        return recorded
    return KeySchedule.single(pinned)


def _verify_export(
    directory: Path, checks: _Checks, progress: Callable[[int], None] | None
) -> LedgerReport:
    from custody.ledger.check import LedgerReport
    from custody.ledger.verify import parse_verifier_key, verify_export

    pinned = parse_verifier_key(checks.verifier_key.read_text()) if checks.verifier_key else None
    report = verify_export(
        directory,
        trusted=checks.notes,
        witness=checks.witness,
        progress=progress,
        workers=os.cpu_count() or 1,
        check_format=checks.check_format,
        pinned=pinned,
        allow_unsigned_tail=checks.allow_unsigned_tail,
    )
    return LedgerReport(
        report.size,
        report.root,
        report.checkpoints_checked,
        report.faults[0] if report.faults else None,
        report.signed_size,
    )


@app.command("checkpoint")
def checkpoint(as_json: JsonOption = False) -> None:
    """Sign a checkpoint of the current tree now (one is also signed every few seconds)."""
    from custody.freezes.breakers import freeze_on_fork
    from custody.ledger.checkpoints import latest_checkpoint, make_checkpoint

    with context.runtime() as rt:
        made = make_checkpoint(rt.db, rt.token(), runtime_identity(rt), on_fork=freeze_on_fork)
        with rt.db.read() as session:
            latest = latest_checkpoint(session)
    if latest is None:
        raise CustodyError("the ledger is empty: nothing to checkpoint", status=409)
    data = {
        "tree_size": latest.tree_size,
        "root": latest.root_hash.hex(),
        "note": latest.note,
        "new": made is not None,
    }
    emit(data, as_json=as_json, human=latest.note.rstrip("\n"))


@app.command("export")
def export(
    directory: Annotated[Path, typer.Argument(file_okay=False)], as_json: JsonOption = False
) -> None:
    """Write entries.jsonl, checkpoint, checkpoints.jsonl, verifier-key and verifier-keys.json
    (every ledger key with the tree sizes it signs) to DIRECTORY."""
    from custody.freezes.breakers import freeze_on_fork
    from custody.ledger.checkpoints import make_checkpoint, runtime_schedule
    from custody.ledger.export import export as export_ledger

    with context.runtime() as rt:
        ident = runtime_identity(rt)
        make_checkpoint(rt.db, rt.token(), ident, on_fork=freeze_on_fork)
        keys = runtime_schedule(rt)
        with _progress("exporting entries", quiet=as_json) as progress, rt.db.read() as session:
            result = export_ledger(session, directory, keys, progress)
    data = {
        "directory": str(result.directory),
        "tree_size": result.tree_size,
        "checkpoints": result.checkpoints,
    }
    emit(
        data,
        as_json=as_json,
        human=f"exported {result.tree_size} entries and {result.checkpoints} checkpoints "
        f"to {result.directory}",
    )


@app.command("publish")
def publish(
    target: Annotated[str, typer.Argument(help="A file path or an http(s) URL.")],
    as_json: JsonOption = False,
) -> None:
    """Copy every checkpoint not yet published to TARGET (a witness outside the database)."""
    from custody.ledger.publish import publish as publish_checkpoints

    with context.runtime() as rt:
        count = publish_checkpoints(rt.db, target)
    emit(
        {"target": target, "published": count},
        as_json=as_json,
        human=f"published {count} checkpoints to {target}",
    )


@app.command("rotate-key")
def rotate_key(
    reason: Annotated[
        str, typer.Option("--reason", help="Why the key is replaced (recorded in the ledger).")
    ] = "scheduled rotation",
    as_json: JsonOption = False,
) -> None:
    """Replace the checkpoint key: a new Ed25519 key in the HSM, a ledger.key_rotated entry,
    and a checkpoint of that entry signed by the old and the new key (the handover)."""
    from custody.ceremonies import transcript
    from custody.ceremonies.rotation import rotate_ledger_key, subject
    from custody.cli import quorum
    from custody.freezes.breakers import freeze_on_fork

    with context.runtime() as rt:
        authorise = quorum.required(rt, "rotate-ledger-key", subject(rt, reason))
        record = transcript.begin(rt, "rotate-key", context.operator())
        done = rotate_ledger_key(
            rt,
            actor=context.operator(),
            reason=reason,
            on_fork=freeze_on_fork,
            authorise=authorise,
        )
        record.step(
            "new ledger key generated in the HSM (Ed25519, never extractable)",
            old_key=done.old_label,
            new_key=done.new_label,
            old_verifier_key=done.old_verifier_key,
            new_verifier_key=done.new_verifier_key,
            reason=reason,
        )
        transcript.recorded(rt, record, "ledger.key_rotated", done.ledger_index)
        record.step(
            "handover checkpoint signed by the old and the new key",
            tree_size=done.handover_size,
            checkpoint=done.handover_note,
        )
        saved = transcript.save(rt, record)
    data = {
        "old": {"label": done.old_label, "verifier_key": done.old_verifier_key},
        "new": {"label": done.new_label, "verifier_key": done.new_verifier_key},
        "ledger_index": done.ledger_index,
        "handover_size": done.handover_size,
        "handover_checkpoint": done.handover_note,
        "transcript": {"path": str(saved.path), "sha256": saved.sha256},
    }
    emit(
        data,
        as_json=as_json,
        human=f"ledger key rotated: {done.old_label} -> [bold]{done.new_label}[/bold] "
        f"(entry {done.ledger_index}; both signed the checkpoint at size {done.handover_size})\n"
        f"new verifier key {done.new_verifier_key}\n"
        "give it to auditors, and a fresh `custody ledger export` (verifier-keys.json)\n"
        f"transcript {saved.path} (and .txt; SHA-256 {saved.sha256})",
    )


@app.command("public-key")
def public_key(as_json: JsonOption = False) -> None:
    """Print the ledger's note verifier key (give it to auditors)."""
    with context.runtime() as rt:
        ident = runtime_identity(rt)
    emit(
        {
            "verifier_key": ident.verifier_key,
            "origin": ident.origin,
            "public_key": ident.public_key.hex(),
        },
        as_json=as_json,
        human=ident.verifier_key,
    )
