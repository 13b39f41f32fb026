"""`custody webhooks`: the delivery log, retries, group URLs and the signing key."""

from __future__ import annotations

from typing import Annotated

import typer

from custody.cli import context
from custody.cli.output import JsonOption, emit, table
from custody.webhooks import service
from custody.webhooks.signing import public_key as webhook_public_key

app = typer.Typer(help="Webhooks: delivery log, retries, group URLs.", no_args_is_help=True)

COLUMNS = [
    "id",
    "target",
    "event",
    "status",
    "attempts",
    "last_error",
    "created_at",
    "next_attempt_at",
    "delivered_at",
]


@app.command("list")
def list_deliveries(
    status: Annotated[
        str | None, typer.Option("--status", help="pending, delivered or failed.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 200,
    as_json: JsonOption = False,
) -> None:
    """The delivery log, newest first."""
    with context.runtime() as rt, rt.db.read() as session:
        rows = service.log_rows(session, status=status, limit=limit)
    table(rows, COLUMNS, as_json=as_json, empty="no webhook deliveries")


@app.command("retry")
def retry(
    delivery_id: Annotated[int, typer.Argument(help="Delivery id (from `webhooks list`).")],
    as_json: JsonOption = False,
) -> None:
    """Queue a failed (or pending) delivery again, due now, with a fresh count of attempts."""
    with context.runtime() as rt, rt.db.write() as session:
        data = service.describe(service.retry(session, delivery_id))
    emit(data, as_json=as_json, human=f"webhook delivery {delivery_id} queued again")


@app.command("group-url")
def group_url(
    group: Annotated[str, typer.Argument(help="Approver group.")],
    url: Annotated[str | None, typer.Argument(help="http(s) URL to tell of waiting work.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Stop notifying the group.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Set (or --clear) where a group is told that requests wait for its approval."""
    chosen = url_or_clear(url, clear)
    with context.runtime() as rt, rt.db.write() as session:
        service.set_group_url(session, group=group, url=chosen, actor=context.operator())
    human = f"group {group}: " + (f"notify {chosen}" if chosen else "notifications off")
    emit({"group": group, "url": chosen}, as_json=as_json, human=human)


@app.command("public-key")
def public_key(as_json: JsonOption = False) -> None:
    """The Ed25519 key that signs webhook bodies (generated in the HSM on first use)."""
    with context.runtime() as rt:
        key = webhook_public_key(rt)
    emit(key.as_dict(), as_json=as_json, human=f"key id {key.key_id}\n{key.pem.rstrip()}")


def url_or_clear(url: str | None, clear: bool) -> str | None:
    if clear == (url is not None):
        raise typer.BadParameter("give a URL or --clear (not both)")
    return url
