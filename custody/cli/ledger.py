"""`custody ledger`: check the append-only ledger."""

from __future__ import annotations

import typer
from rich.progress import Progress

from custody.cli import context
from custody.cli.output import JsonOption, console, emit
from custody.errors import CustodyError
from custody.ledger.check import check

app = typer.Typer(help="The append-only ledger.", no_args_is_help=True)


class LedgerFault(CustodyError):
    status = 500
    title = "Ledger verification failed"
    slug = "ledger-fault"


@app.command("verify")
def verify(as_json: JsonOption = False) -> None:
    """Recompute every entry's leaf hash and the tree root; exit non-zero on any fault."""
    with context.runtime() as rt, rt.db.read() as session:
        if as_json:
            report = check(session)
        else:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("verifying entries", total=None)
                report = check(session, lambda n: progress.update(task, completed=n))
    data = {"ok": report.ok, "size": report.size, "root": report.root.hex(), "fault": report.fault}
    if not report.ok:
        if as_json:
            emit(data, as_json=True)
        raise LedgerFault(f"ledger verification failed: {report.fault}")
    emit(data, as_json=as_json, human=f"ledger ok: {report.size} entries, root {report.root.hex()}")
