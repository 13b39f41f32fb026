"""`custody wallets`: named accounts, each one HSM key on one chain (or, on Bitcoin, M of N)."""

from __future__ import annotations

from typing import Annotated

import typer

from custody.cli import context
from custody.cli.output import JsonOption, emit, table
from custody.errors import ValidationFailed
from custody.wallets import repository, service

app = typer.Typer(help="Wallets: an HSM key on a chain, with its address.", no_args_is_help=True)


@app.command("create")
def create(  # noqa: PLR0917  (Typer maps each parameter to one command-line option)
    name: Annotated[str, typer.Argument(help="Wallet name, e.g. hot-eth.")],
    chain: Annotated[str, typer.Option("--chain", help="Chain name.")],
    key: Annotated[
        str | None, typer.Option("--key", help="Label of a secp256k1 key (single-key wallet).")
    ] = None,
    owners: Annotated[
        str | None,
        typer.Option(
            "--owners",
            help="Bitcoin: comma-separated owner key labels (P2WSH); an external cosigner's "
            "key as 66 hex digits of its compressed public key.",
        ),
    ] = None,
    threshold: Annotated[
        int | None, typer.Option("--threshold", help="Bitcoin: signatures required (M of N).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a wallet; its address is derived from the key's public key in the HSM."""
    if (key is None) == (owners is None) or (owners is None) != (threshold is None):
        raise ValidationFailed("give either --key, or --owners with --threshold")
    with context.runtime() as rt, rt.db.write() as session:
        if owners is not None:
            wallet = service.create_bitcoin_wallet(
                session,
                name=name,
                chain_name=chain,
                owner_labels=[label.strip() for label in owners.split(",")],
                threshold=threshold,
                actor=context.operator(),
            )
        else:
            assert key is not None
            wallet = service.create_wallet(
                session, name=name, chain_name=chain, key_label=key, actor=context.operator()
            )
        data = {
            "name": wallet.name,
            "chain": chain,
            "key": key or owners,
            "address": wallet.address,
        }
        if wallet.descriptor is not None:
            data["descriptor"] = wallet.descriptor
    emit(data, as_json=as_json, human=f"wallet {name} on {chain}: [bold]{data['address']}[/bold]")


@app.command("list")
def list_wallets(as_json: JsonOption = False) -> None:
    """All wallets with their addresses (and, on Bitcoin, their output descriptors)."""
    with context.runtime() as rt, rt.db.read() as session:
        rows = [
            {"name": w.name, "chain": c.name, "key": k.label, "address": w.address}
            | ({} if w.descriptor is None else {"descriptor": w.descriptor})
            for w, c, k in repository.wallets(session)
        ]
    table(
        rows,
        ["name", "chain", "key", "address", "descriptor"],
        as_json=as_json,
        empty="no wallets yet: custody wallets create NAME --chain ethereum --key LABEL",
    )


@app.command("balance")
def balance(
    name: Annotated[str | None, typer.Argument(help="Wallet name; all wallets without it.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Balance from the chain's node, amounts of live requests, and the next nonce."""
    from custody.broadcast.balances import balances

    with context.runtime() as rt:
        rows = [
            b.model_dump(mode="json")
            for b in balances(rt.db, timeout=rt.settings.node_timeout_seconds, name=name)
        ]
    if as_json:
        emit(rows[0] if name is not None else rows, as_json=True)
        return
    for row in rows:
        row["pending"] = ", ".join(f"{v} {k}" for k, v in row["pending"].items()) or "-"
        row["balance"] = row["balance"] or row["node_error"] or "(no node)"
    table(
        rows,
        ["name", "chain", "address", "balance", "asset", "pending", "next_nonce"],
        as_json=False,
        empty="no wallets yet",
    )
