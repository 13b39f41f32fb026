"""Output for people (Rich tables) or machines (`--json`), and one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]

# A governance approver's device-key decision, recorded from the CLI (ceremonies, configuration).
ApproverOption = Annotated[str, typer.Option("--approver", help="The approver's name.")]
SignatureOption = Annotated[
    str, typer.Option("--signature", help="Base64 Ed25519 signature by their device key.")
]
RejectOption = Annotated[bool, typer.Option("--reject", help="Record a rejection.")]

# Piped output is read by people in logs and terminals wider than 80 columns: do not fold
# addresses and digests into pieces there.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)


def emit(data: Any, *, as_json: bool, human: str | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    elif human is not None:
        console.print(human, highlight=False)


def table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    as_json: bool,
    title: str | None = None,
    empty: str = "nothing yet",
) -> None:
    if as_json:
        emit(list(rows), as_json=True)
        return
    if not rows:
        console.print(f"[dim]{empty}[/dim]")
        return
    view = Table(title=title, header_style="bold")
    for column in columns:
        view.add_column(column, overflow="fold")
    for row in rows:
        view.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    console.print(view)


def fail_line(message: str, *, as_json: bool, status: int | None = None) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"error": {"message": message, "status": status}}) + "\n")
    # escaped: a message may name `[tokens."vault"]` or a path with [ ], which are not markup
    err_console.print(
        f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True
    )


def warn_line(message: str) -> None:
    """Something the operator should know that did not stop the command: one line on stderr."""
    line = f"[bold yellow]warning:[/bold yellow] {escape(message)}"  # a path may hold [ ]
    err_console.print(line, highlight=False, soft_wrap=True)
