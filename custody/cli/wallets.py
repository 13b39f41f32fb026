"""`custody wallets`: named accounts, each one HSM key on one chain (or, on Bitcoin, M of N)."""

from __future__ import annotations

from typing import Annotated

import typer

from custody.catalog import chains as catalog
from custody.cli import context
from custody.cli.output import JsonOption, console, emit, table
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
        int | None, typer.Option("--threshold", help="Signatures required (M of N).")
    ] = None,
    safe: Annotated[
        bool,
        typer.Option(
            "--safe", help="EVM: a Safe v1.4.1 multisig of the --owners keys (see wallets deploy)."
        ),
    ] = False,
    executor: Annotated[
        str | None,
        typer.Option("--executor", help="Safe: the single-key wallet that sends and pays gas."),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            "--address", help="Safe: adopt the Safe already at this address (checked on chain)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create a wallet; its address is derived from the key's public key in the HSM."""
    if (key is None) == (owners is None) or (owners is None) != (threshold is None):
        raise ValidationFailed("give either --key, or --owners with --threshold")
    if safe != (executor is not None) or (address is not None and not safe):
        raise ValidationFailed(
            "a Safe wallet takes --safe with --executor (and --address to adopt)"
        )
    if safe:
        assert owners is not None
        assert threshold is not None
        assert executor is not None
        _create_safe(name, chain, owners, threshold, executor, address, as_json=as_json)
        return
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


def _create_safe(  # noqa: PLR0917  (the command's options)
    name: str,
    chain: str,
    owners: str,
    threshold: int,
    executor: str,
    address: str | None,
    *,
    as_json: bool,
) -> None:
    from custody.chains.evm.rpc import EvmNode
    from custody.chains.evm.safe_node import contracts_on, read_safe
    from custody.chains.values import EvmAddress
    from custody.wallets import safes

    adopted_at = None if address is None else EvmAddress.parse(address, what="--address")
    with context.runtime() as rt:
        with rt.db.read() as session:
            row = catalog.chain_by_name(session, chain)
            url, chain_id = row.rpc_url, row.evm_chain_id
        if adopted_at is not None and (url is None or chain_id is None):
            raise ValidationFailed(f"--address needs chain {chain} connected to a node (--rpc-url)")
        node = (
            None
            if url is None or chain_id is None
            else EvmNode(
                url, chain_name=chain, chain_id=chain_id, timeout=rt.settings.node_timeout_seconds
            )
        )
        try:
            contracts = contracts_on(node)
            adopted = None
            if adopted_at is not None:
                assert node is not None
                found = read_safe(node, adopted_at)
                if found is None:
                    raise ValidationFailed(f"there is no contract at {adopted_at} on {chain}")
                adopted = (adopted_at, found)
        finally:
            if node is not None:
                node.close()
        with rt.db.write() as session:
            wallet = safes.create_safe_wallet(
                session,
                name=name,
                chain_name=chain,
                owner_labels=[label.strip() for label in owners.split(",")],
                threshold=threshold,
                executor_name=executor,
                contracts=contracts,
                actor=context.operator(),
                adopted=adopted,
            )
            setup = safes.safe_setup(session, wallet)
            data = {
                "name": wallet.name,
                "chain": chain,
                "address": wallet.address,
                "owners": [o.label for o in setup.owners],
                "owner_tokens": [o.token or "main" for o in setup.owners],
                "threshold": threshold,
                "executor": executor,
                "deployed": setup.deployed,
            }
    tokens = data["owner_tokens"]
    assert isinstance(tokens, list)
    note = "" if len(set(tokens)) == len(tokens) else " (warning: several owners share a token)"
    human = (
        f"Safe {name} on {chain} ({threshold} of {len(tokens)}): [bold]{data['address']}[/bold]"
        + ("" if setup.deployed else f"; deploy it with custody wallets deploy {name}")
        + note
    )
    emit(data, as_json=as_json, human=human)


@app.command("deploy")
def deploy(
    name: Annotated[str, typer.Argument(help="Safe wallet name.")],
    as_json: JsonOption = False,
) -> None:
    """Deploy a Safe wallet's contract, paid by its executor (on a development chain, the Safe
    singleton and factory first)."""
    from custody.broadcast.safe_deploy import deploy as deploy_safe

    def progress(text: str) -> None:
        if not as_json:
            console.print(text)

    with context.runtime() as rt:
        done = deploy_safe(rt, name, actor=context.operator(), progress=progress)
    data = {"name": name, "address": done.address, "transactions": done.transactions}
    human = (
        f"Safe {name} was already on chain at {done.address}: its owners and threshold match"
        if done.already
        else f"Safe {name} deployed at [bold]{done.address}[/bold]"
    )
    emit(data, as_json=as_json, human=human)


@app.command("list")
def list_wallets(as_json: JsonOption = False) -> None:
    """All wallets with their addresses (and, on Bitcoin, their output descriptors)."""
    from custody.wallets import safes

    with context.runtime() as rt, rt.db.read() as session:
        rows = []
        for w, c, k in repository.wallets(session):
            row: dict[str, object] = {"name": w.name, "chain": c.name, "key": k.label}
            row["address"] = w.address
            if w.descriptor is not None:
                row["descriptor"] = w.descriptor
            multisig = safes.find_safe(session, w.id)
            if multisig is not None:
                setup = safes.safe_setup(session, w)
                labels = [owner.label for owner in setup.owners]
                row["key"] = f"Safe {setup.threshold} of {len(labels)}: {', '.join(labels)}"
                row |= {
                    "owners": labels,
                    "threshold": setup.threshold,
                    "executor": setup.executor.name,
                    "deployed": setup.deployed,
                }
            rows.append(row)
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
