"""`custody clients`: trading systems (and auditors) allowed to call the API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custody.cli import context
from custody.cli.output import JsonOption, emit, table
from custody.clients import service
from custody.requests.service import cancel_after_key_rotation

app = typer.Typer(help="API clients (Ed25519 public keys).", no_args_is_help=True)

NameArgument = Annotated[str, typer.Argument(help="Client name.")]
PublicKeyOption = Annotated[
    Path,
    typer.Option(
        "--public-key",
        help="Ed25519 public key, PEM.",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]


@app.command("add")
def add(
    name: NameArgument,
    public_key: PublicKeyOption,
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help="trading (default: submits requests), auditor (reads the ledger) or "
            "operator (freezes signing over the API).",
        ),
    ] = "trading",
    as_json: JsonOption = False,
) -> None:
    """Register a client; prints the client id it must put in its tokens' `sub`."""
    pem = public_key.read_bytes()
    with context.runtime() as rt, rt.db.write() as session:
        client = service.add_client(
            session, name=name, public_key_pem=pem, actor=context.operator(), role=role
        )
        data = {"id": client.id, "name": client.name, "role": client.role}
    emit(data, as_json=as_json, human=f"{role} client {name}: id [bold]{data['id']}[/bold]")


@app.command("disable")
def disable(name: NameArgument, as_json: JsonOption = False) -> None:
    """Refuse every call of this client (401) until it is enabled again."""
    with context.runtime() as rt, rt.db.write() as session:
        client = service.disable(session, name=name, actor=context.operator())
        data = {"id": client.id, "name": client.name, "disabled": True}
    emit(data, as_json=as_json, human=f"client {name} disabled: its calls are refused")


@app.command("enable")
def enable(name: NameArgument, as_json: JsonOption = False) -> None:
    """Accept this client's calls again."""
    with context.runtime() as rt, rt.db.write() as session:
        client = service.enable(session, name=name, actor=context.operator())
        data = {"id": client.id, "name": client.name, "disabled": False}
    emit(data, as_json=as_json, human=f"client {name} enabled")


@app.command("rotate-key")
def rotate_key(
    name: NameArgument, public_key: PublicKeyOption, as_json: JsonOption = False
) -> None:
    """Replace the client's public key: tokens signed with the old key are refused at once, and
    its requests nobody signed yet are cancelled (the client submits them again)."""
    pem = public_key.read_bytes()
    with context.runtime() as rt, rt.db.write() as session:
        client = service.rotate_key(
            session, name=name, public_key_pem=pem, actor=context.operator()
        )
        cancelled = cancel_after_key_rotation(
            session, client_id=client.id, actor=context.operator()
        )
        data = {
            "id": client.id,
            "name": client.name,
            "public_key": client.public_key_pem,
            "cancelled_requests": cancelled,
        }
    human = f"client {name}: new key in use, the old one is refused"
    if cancelled:
        human += f"; cancelled {len(cancelled)} waiting request(s) it had signed"
    emit(data, as_json=as_json, human=human)


@app.command("list")
def list_clients(as_json: JsonOption = False) -> None:
    """All clients."""
    with context.runtime() as rt, rt.db.read() as session:
        rows = [
            {
                "id": c.id,
                "name": c.name,
                "role": c.role,
                "webhook_url": c.webhook_url,
                "created_at": c.created_at.isoformat(),
                "disabled": c.disabled_at is not None,
            }
            for c in service.list_clients(session)
        ]
    table(rows, ["id", "name", "role", "created_at", "disabled"], as_json=as_json)


@app.command("set-webhook")
def set_webhook(
    name: Annotated[str, typer.Argument(help="Client name.")],
    url: Annotated[
        str | None, typer.Argument(help="http(s) URL that receives the client's webhooks.")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Stop sending webhooks.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Set (or --clear) where a client is told of its requests' status changes."""
    from custody.cli.webhooks import url_or_clear
    from custody.webhooks import service as webhooks

    chosen = url_or_clear(url, clear)
    with context.runtime() as rt, rt.db.write() as session:
        client = webhooks.set_client_webhook(
            session, name=name, url=chosen, actor=context.operator()
        )
        data = {"id": client.id, "name": client.name, "webhook_url": client.webhook_url}
    human = f"client {name}: " + (f"webhooks to {chosen}" if chosen else "webhooks off")
    emit(data, as_json=as_json, human=human)
