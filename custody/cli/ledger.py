"""`custody ledger`: verify, export, checkpoint and publish the append-only ledger."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress

from custody.cli import context
from custody.cli.output import JsonOption, console, emit, err_console
from custody.errors import CustodyError
from custody.ledger.checkpoints import runtime_identity

if TYPE_CHECKING:
    from custody.ledger.verify import Checkpoint, VerifierKey
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
    as_json: JsonOption = False,
) -> None:
    """Recompute every leaf and root, check every checkpoint; exit non-zero on any fault."""
    from custody.ledger.verify import VerificationError, parse_checkpoint, parse_verifier_key

    notes = [p.read_text() for p in trusted or []]
    try:
        with _progress("verifying entries", quiet=as_json) as progress:
            if export is not None:
                from custody.ledger.verify import parse_verifier_key as parse_key

                pinned = parse_key(verifier_key.read_text()) if verifier_key else None
                size, root, checked, fault = _verify_export(
                    export, notes, witness, progress, check_format=not hashes_only, pinned=pinned
                )
            else:
                with context.runtime() as rt:
                    key_text = (
                        verifier_key.read_text()
                        if verifier_key
                        else runtime_identity(rt).verifier_key
                    )
                    key = parse_verifier_key(key_text)
                    external = [parse_checkpoint(n, key) for n in notes]
                    if witness is not None:
                        from custody.ledger.verify import read_witness

                        external += read_witness(witness, key)
                    size, root, checked, fault = _verify_db(
                        rt, key, external, progress, check_format=not hashes_only
                    )
    except VerificationError as exc:
        raise LedgerFault(f"ledger verification failed: {exc}") from None
    data = {
        "ok": fault is None,
        "size": size,
        "root": root.hex(),
        "checkpoints": checked,
        "fault": fault,
    }
    if fault is not None:
        if as_json:  # the report is the one JSON document; the diagnosis still goes to stderr
            message = f"ledger verification failed: {fault}"
            emit(
                {**data, "error": {"message": message, "status": LedgerFault.status}}, as_json=True
            )
            err_console.print(
                f"[bold red]error:[/bold red] ledger verification failed: {fault}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1)
        raise LedgerFault(f"ledger verification failed: {fault}")
    emit(
        data,
        as_json=as_json,
        human=f"ledger ok: {size} entries, root {root.hex()}, {checked} checkpoints verified",
    )


def _verify_db(
    rt: Runtime,
    key: VerifierKey,
    external: Sequence[Checkpoint],
    progress: Callable[[int], None] | None,
    *,
    check_format: bool,
) -> tuple[int, bytes, int, str | None]:
    from custody.ledger.check import check

    with rt.db.read() as session:
        report = check(
            session,
            key,
            external=external,
            progress=progress,
            workers=os.cpu_count() or 1,
            check_format=check_format,
        )
    return report.size, report.root, report.checkpoints_checked, report.fault


def _verify_export(
    directory: Path,
    notes: list[str],
    witness: Path | None,
    progress: Callable[[int], None] | None,
    *,
    check_format: bool,
    pinned: VerifierKey | None,
) -> tuple[int, bytes, int, str | None]:
    from custody.ledger.verify import verify_export

    report = verify_export(
        directory,
        trusted=notes,
        witness=witness,
        progress=progress,
        workers=os.cpu_count() or 1,
        check_format=check_format,
        pinned=pinned,
    )
    return (
        report.size,
        report.root,
        report.checkpoints_checked,
        (report.faults[0] if report.faults else None),
    )


@app.command("checkpoint")
def checkpoint(as_json: JsonOption = False) -> None:
    """Sign a checkpoint of the current tree now (one is also signed every few seconds)."""
    from custody.ledger.checkpoints import latest_checkpoint, make_checkpoint

    with context.runtime() as rt:
        made = make_checkpoint(rt.db, rt.token(), runtime_identity(rt))
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
    """Write entries.jsonl, checkpoint, checkpoints.jsonl and verifier-key to DIRECTORY."""
    from custody.ledger.checkpoints import make_checkpoint
    from custody.ledger.export import export as export_ledger

    with context.runtime() as rt:
        ident = runtime_identity(rt)
        make_checkpoint(rt.db, rt.token(), ident)
        with _progress("exporting entries", quiet=as_json) as progress, rt.db.read() as session:
            result = export_ledger(session, directory, ident.verifier_key, progress)
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
