"""`custody assets`: tokens custody recognises, so their transfers count as withdrawals."""

from __future__ import annotations

from typing import Annotated

import typer

from custody.catalog import assets
from custody.cli import context
from custody.cli.output import JsonOption, emit, table

app = typer.Typer(help="Token registry: symbol, chain, contract, decimals.", no_args_is_help=True)


@app.command("add")
def add(
    symbol: Annotated[str, typer.Argument(help="Upper-case symbol, e.g. USDC.")],
    chain: Annotated[str, typer.Option("--chain", help="Chain name.")],
    contract: Annotated[str, typer.Option("--contract", help="Token contract (EIP-55).")],
    # Range-checked by the service, not by Typer: a bad value is one `error:` line and exit 1.
    decimals: Annotated[int, typer.Option("--decimals", help="Token decimals (0 to 36).")],
    as_json: JsonOption = False,
) -> None:
    """Register an ERC-20 token on a chain."""
    with context.runtime() as rt, rt.db.write() as session:
        row = assets.add_asset(
            session,
            symbol=symbol,
            chain_name=chain,
            contract=contract,
            decimals=decimals,
            actor=context.operator(),
        )
    emit(
        row.as_dict(),
        as_json=as_json,
        human=f"added asset {row.symbol} on {row.chain}: {row.contract} ({row.decimals} decimals)",
    )


@app.command("list")
def list_assets(as_json: JsonOption = False) -> None:
    """All registered tokens."""
    with context.runtime() as rt, rt.db.read() as session:
        rows = [row.as_dict() for row in assets.list_assets(session)]
    table(
        rows,
        ["symbol", "chain", "contract", "decimals", "standard"],
        as_json=as_json,
        empty="no assets yet: custody assets add USDC --chain ethereum --contract 0x… --decimals 6",
    )
