"""`custody demo seed`: the demo installation `make demo` serves (development only)."""

from __future__ import annotations

from typing import Annotated

import typer

from custody.cli import context
from custody.cli.output import JsonOption, emit

app = typer.Typer(help="Demo data for trying custody out (development only).", no_args_is_help=True)


@app.command("seed")
def seed(
    node: Annotated[
        str | None,
        typer.Option(
            "--node",
            help="A local anvil's URL: adds the connected chain `local` and a funded wallet "
            "`local-eth` on it.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a demo key, wallet hot-eth, client demo-desk and the demo policy (idempotent)."""
    from custody.setup.demo import seed as seed_demo

    with context.runtime() as rt:
        demo = seed_demo(rt, context.operator(), node)
    data = {
        "client_id": demo.client_id,
        "client_private_key": str(demo.client_key_path),
        "wallet": demo.wallet,
        "address": demo.address,
        "policy_digest": demo.policy_digest,
        "local_wallet": demo.local_wallet,
        "local_safe": demo.local_safe,
    }
    emit(
        data,
        as_json=as_json,
        human=(
            f"demo ready: wallet {demo.wallet} {demo.address}\n"
            f"  client demo-desk id {demo.client_id}, private key {demo.client_key_path}"
            + (
                f"\n  connected chain local ({node}), wallet {demo.local_wallet}, "
                f"2-of-3 Safe {demo.local_safe}"
                if demo.local_wallet
                else ""
            )
        ),
    )
