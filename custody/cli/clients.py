"""`custody clients`: trading systems allowed to call the API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custody.cli import context
from custody.cli.output import JsonOption, emit, table
from custody.clients import service

app = typer.Typer(help="API clients (Ed25519 public keys).", no_args_is_help=True)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Client name.")],
    public_key: Annotated[
        Path,
        typer.Option(
            "--public-key",
            help="Ed25519 public key, PEM.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    role: Annotated[str, typer.Option("--role", help="trading (default) or auditor.")] = "trading",
    as_json: JsonOption = False,
) -> None:
    """Register a client; prints the client id it must put in its tokens' `sub`."""
    pem = public_key.read_bytes()
    with context.runtime() as rt, rt.db.write() as session:
        client = service.add_client(
            session, name=name, public_key_pem=pem, actor=context.operator()
        )
        data = {"id": client.id, "name": client.name}
    emit(data, as_json=as_json, human=f"client {name}: id [bold]{data['id']}[/bold]")


@app.command("list")
def list_clients(as_json: JsonOption = False) -> None:
    """All clients."""
    with context.runtime() as rt, rt.db.read() as session:
        rows = [
            {
                "id": c.id,
                "name": c.name,
                "created_at": c.created_at.isoformat(),
                "disabled": c.disabled_at is not None,
            }
            for c in service.list_clients(session)
        ]
    table(rows, ["id", "name", "role", "created_at", "disabled"], as_json=as_json)
