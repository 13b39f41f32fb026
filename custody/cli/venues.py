"""`custody venues`: trading venues whose EIP-712 orders may be signed."""

from __future__ import annotations

from typing import Annotated

import typer

from custody.catalog import venues
from custody.cli import context
from custody.cli.output import JsonOption, emit, table

app = typer.Typer(
    help="Trading venues: chain, verifying contract, order types.", no_args_is_help=True
)
PRIMARY_TYPE_HELP = (
    "TYPE:sell_token=F:sell_amount=F[+F]:buy_token=F:buy_amount=F:receiver=F"
    "[:zero_receiver=wallet] (repeatable; F names a field of the order)."
)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Venue name, e.g. cowswap.")],
    chain: Annotated[str, typer.Option("--chain", help="Chain name.")],
    verifying_contract: Annotated[
        str, typer.Option("--verifying-contract", help="The domain's verifyingContract.")
    ],
    primary_type: Annotated[
        list[str],
        typer.Option("--primary-type", help=PRIMARY_TYPE_HELP),
    ],
    as_json: JsonOption = False,
) -> None:
    """Register a venue and the order types it accepts."""
    with context.runtime() as rt, rt.db.write() as session:
        row = venues.add_venue(
            session,
            name=name,
            chain_name=chain,
            verifying_contract=verifying_contract,
            primary_types=primary_type,
            actor=context.operator(),
        )
    emit(
        row.as_dict(),
        as_json=as_json,
        human=f"added venue {row.name} on {row.chain}: {row.verifying_contract} "
        f"({', '.join(sorted(row.primary_types))})",
    )


@app.command("set")
def set_types(
    name: Annotated[str, typer.Argument(help="Venue name.")],
    primary_type: Annotated[
        list[str],
        typer.Option("--primary-type", help=PRIMARY_TYPE_HELP),
    ],
    as_json: JsonOption = False,
) -> None:
    """Declare a venue's order types anew, replacing all earlier declarations."""
    with context.runtime() as rt, rt.db.write() as session:
        row = venues.set_primary_types(
            session, name=name, primary_types=primary_type, actor=context.operator()
        )
    emit(
        row.as_dict(),
        as_json=as_json,
        human=f"venue {row.name} now accepts {', '.join(sorted(row.primary_types))}",
    )


@app.command("list")
def list_venues(as_json: JsonOption = False) -> None:
    """All venues."""
    with context.runtime() as rt, rt.db.read() as session:
        rows = [
            {**row.as_dict(), "types": ", ".join(sorted(row.primary_types))}
            for row in venues.list_venues(session)
        ]
    if as_json:
        rows = [{k: v for k, v in row.items() if k != "types"} for row in rows]
    table(rows, ["name", "chain", "verifying_contract", "types"], as_json=as_json)
