"""`custody chains`: EVM chains this installation signs for."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from custody.catalog import chains as catalog
from custody.catalog.chains import NodeSettings
from custody.chains.evm.rpc import EvmNode, NodeUnavailable
from custody.cli import context
from custody.cli.output import JsonOption, emit, table
from custody.store.models import Chain

RpcUrlOption = Annotated[
    str | None, typer.Option("--rpc-url", help="The chain's JSON-RPC node: makes it connected.")
]
ConfirmationsOption = Annotated[
    int | None, typer.Option("--confirmations", help="Blocks until a transaction is confirmed.")
]
MaxFeeOption = Annotated[
    int | None,
    typer.Option("--max-fee-per-gas", help="The most a transaction may offer per gas, in wei."),
]

app = typer.Typer(help="Chains (built-in: ethereum, sepolia).", no_args_is_help=True)


@app.command("add")
def add(  # noqa: PLR0917  (Typer maps each parameter to one command-line option)
    name: Annotated[str, typer.Argument(help="Chain name, e.g. base or holesky.")],
    evm_chain_id: Annotated[int, typer.Option("--evm-chain-id", help="EIP-155 chain id.")],
    native_asset: Annotated[str, typer.Option("--native-asset")] = "ETH",
    decimals: Annotated[int, typer.Option("--decimals", min=0, max=36)] = 18,
    rpc_url: RpcUrlOption = None,
    confirmations: ConfirmationsOption = None,
    max_fee_per_gas: MaxFeeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add an EVM chain; with --rpc-url it is connected (custody fills nonces and fees,
    broadcasts and follows transactions to --confirmations blocks)."""
    node = NodeSettings(rpc_url, confirmations, max_fee_per_gas)
    if rpc_url is not None:
        check_node(context.settings().node_timeout_seconds, rpc_url, name, evm_chain_id)
    with context.runtime() as rt, rt.db.write() as session:
        chain = catalog.add_chain(
            session,
            name=name,
            evm_chain_id=evm_chain_id,
            native_asset=native_asset,
            native_decimals=decimals,
            actor=context.operator(),
            node=node,
        )
        data = {
            "name": chain.name,
            "evm_chain_id": chain.evm_chain_id,
            "native_asset": chain.native_asset,
            "native_decimals": chain.native_decimals,
            **(catalog.node_view(chain) if chain.rpc_url else {}),
        }
    emit(data, as_json=as_json, human=f"added chain {name} (EVM chain id {evm_chain_id})")


@app.command("set")
def set_chain(  # noqa: PLR0917  (Typer maps each parameter to one command-line option)
    name: Annotated[str, typer.Argument(help="Chain name.")],
    rpc_url: RpcUrlOption = None,
    confirmations: ConfirmationsOption = None,
    max_fee_per_gas: MaxFeeOption = None,
    disconnect: Annotated[
        bool, typer.Option("--disconnect", help="Forget the node: sign only, as before.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Change how custody reaches a chain's node."""
    with context.runtime() as rt:
        with rt.db.read() as session:
            evm_chain_id = catalog.chain_by_name(session, name).evm_chain_id
        if rpc_url is not None and evm_chain_id is not None:
            # (a chain without an EVM id is refused by set_chain below)
            check_node(rt.settings.node_timeout_seconds, rpc_url, name, evm_chain_id)
        with rt.db.write() as session:
            chain = catalog.set_chain(
                session,
                name=name,
                node=NodeSettings(rpc_url, confirmations, max_fee_per_gas, disconnect),
                actor=context.operator(),
            )
            data = _row(chain)
    emit(data, as_json=as_json, human=f"chain {name}: {_connection(data)}")


def check_node(timeout: float, url: str, name: str, evm_chain_id: int) -> None:
    """A node that answers with another chain id is refused before anything is stored; one that
    does not answer now is accepted (the broadcaster checks it again on every connection)."""
    with EvmNode(url, chain_name=name, chain_id=evm_chain_id, timeout=timeout) as node:
        try:
            node.check_chain()
        except NodeUnavailable as exc:
            typer.echo(f"warning: {exc.message}; stored anyway", err=True)


def _row(chain: Chain) -> dict[str, Any]:
    return {
        "name": chain.name,
        "kind": chain.kind,
        "evm_chain_id": chain.evm_chain_id,
        "native_asset": chain.native_asset,
        "native_decimals": chain.native_decimals,
        **catalog.node_view(chain),
    }


def _connection(row: dict[str, Any]) -> str:
    if not row["connected"]:
        return "not connected"
    return f"connected to {row['rpc']}, {row['confirmations']} confirmation(s)"


@app.command("list")
def list_chains(as_json: JsonOption = False) -> None:
    """All chains."""
    with context.runtime() as rt, rt.db.read() as session:
        rows = [_row(c) for c in catalog.chains(session)]
    table(
        rows,
        ["name", "kind", "evm_chain_id", "native_asset", "rpc", "confirmations"],
        as_json=as_json,
    )
