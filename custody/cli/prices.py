"""`custody prices`: the USD reference prices that `amount_usd_*` policy rules read."""

from __future__ import annotations

from typing import Annotated

import typer

from custody.cli import context
from custody.cli.output import JsonOption, emit, table
from custody.prices import service as prices

app = typer.Typer(
    help="USD reference prices (per whole unit of an asset on a chain), dated now.",
    no_args_is_help=True,
)


@app.command("set")
def set_price(
    symbol: Annotated[str, typer.Argument(help="Asset symbol, e.g. ETH or USDC.")],
    usd_per_unit: Annotated[str, typer.Argument(help='USD per whole unit, e.g. "3000.00".')],
    decimals: Annotated[int, typer.Option("--decimals", help="The asset's decimals.")],
    chain: Annotated[
        str | None,
        typer.Option("--chain", help="The chain of the asset; needed when SYMBOL names several."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Set (or replace) the reference price of an asset on one chain."""
    with context.runtime() as rt, rt.db.write() as session:
        row = prices.set_price(
            session,
            symbol=symbol,
            usd_per_unit=usd_per_unit,
            decimals=decimals,
            actor=context.operator(),
            chain=chain,
        )
    where = "native" if row.contract is None else row.contract
    human = f"{row.asset} on {row.chain} ({where}) = {row.usd_per_unit} USD"
    emit(row.as_dict(), as_json=as_json, human=human)


@app.command("list")
def list_prices(as_json: JsonOption = False) -> None:
    """All reference prices and when they were set."""
    with context.runtime() as rt, rt.db.read() as session:
        rows = [row.as_dict() for row in prices.list_prices(session)]
    table(
        rows,
        ["asset", "chain", "contract", "usd_per_unit", "decimals", "as_of"],
        as_json=as_json,
        empty="no prices yet: custody prices set ETH 3000.00 --decimals 18 --chain ethereum",
    )
