"""`custody chains`: EVM chains this installation signs for."""

from __future__ import annotations

from typing import Annotated

import typer

from custody.catalog import chains as catalog
from custody.cli import context
from custody.cli.output import JsonOption, emit, table

app = typer.Typer(help="Chains (built-in: ethereum, sepolia).", no_args_is_help=True)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Chain name, e.g. base or holesky.")],
    evm_chain_id: Annotated[int, typer.Option("--evm-chain-id", help="EIP-155 chain id.")],
    native_asset: Annotated[str, typer.Option("--native-asset")] = "ETH",
    decimals: Annotated[int, typer.Option("--decimals", min=0, max=36)] = 18,
    as_json: JsonOption = False,
) -> None:
    """Add an EVM chain."""
    with context.runtime() as rt, rt.db.write() as session:
        chain = catalog.add_chain(
            session,
            name=name,
            evm_chain_id=evm_chain_id,
            native_asset=native_asset,
            native_decimals=decimals,
            actor=context.operator(),
        )
        data = {
            "name": chain.name,
            "evm_chain_id": chain.evm_chain_id,
            "native_asset": chain.native_asset,
            "native_decimals": chain.native_decimals,
        }
    emit(data, as_json=as_json, human=f"added chain {name} (EVM chain id {evm_chain_id})")


@app.command("list")
def list_chains(as_json: JsonOption = False) -> None:
    """All chains."""
    with context.runtime() as rt, rt.db.read() as session:
        rows = [
            {
                "name": c.name,
                "kind": c.kind,
                "evm_chain_id": c.evm_chain_id,
                "native_asset": c.native_asset,
                "native_decimals": c.native_decimals,
            }
            for c in catalog.chains(session)
        ]
    table(rows, ["name", "kind", "evm_chain_id", "native_asset"], as_json=as_json)
