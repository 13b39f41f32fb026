"""Completing a request on a connected chain: gas and fees from the node, the nonce from us.

Gas and fees are asked of the node between intake's read and write transactions (no lock is
held while the node answers). The nonce is chosen inside the write transaction, under the ledger
head lock that decides limits, so concurrent requests of one wallet get consecutive nonces: the
smallest nonce at or above the node's pending count that no live request holds. A rejected,
cancelled or expired request holds none, so the next request fills its gap; a request that was
ever signed keeps its nonce (custody.store.models `NONCE_HELD`). The node's count is what makes
it survive restarts and transactions sent from elsewhere; the database is what makes it
consistent between concurrent requests.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from custody.chains.evm import fees as fee_rules
from custody.chains.evm.rpc import EvmNode, NodeRefused
from custody.chains.evm.safe_node import safe_nonce
from custody.chains.evm.safe_payload import executor_gas
from custody.chains.values import EvmAddress
from custody.intake.errors import InvalidBody
from custody.intake.evmfill import EvmFill, TxShape
from custody.requests import repository as requests
from custody.store.models import Chain


@dataclass(frozen=True)
class Quote:
    """What the node said: the fill without its nonce, and the wallet's pending count."""

    fill: EvmFill
    pending_nonce: int | None
    executor_pending: int | None = None
    """A Safe wallet's request: the executor's pending account nonce."""


def quote(shape: TxShape, *, timeout: float) -> Quote:
    """Ask the chain's node for what the body left out (raises NodeUnavailable, WrongChain)."""
    chain, given = shape.chain, shape.given
    # Only EVM chains connect to a node (custody.catalog.chains refuses the others).
    assert chain.rpc_url is not None
    assert chain.evm_chain_id is not None
    with EvmNode(
        chain.rpc_url, chain_name=chain.name, chain_id=chain.evm_chain_id, timeout=timeout
    ) as node:
        gas = given.gas
        if gas is None and shape.safe is not None:
            # what the Safe's call costs, and what execTransaction adds around it
            gas = fee_rules.gas_limit(executor_gas(_estimate(node, shape), shape.safe.threshold))
        elif gas is None:
            gas = fee_rules.gas_limit(_estimate(node, shape))
        fill_fees = None
        if given.max_priority_fee_per_gas is None or given.max_fee_per_gas is None:
            base, tips = node.fee_history(fee_rules.HISTORY_BLOCKS, fee_rules.TIP_PERCENTILE)
            fill_fees = fee_rules.fees(base, tips, given_max_fee=given.max_fee_per_gas)
        pending = None
        if given.nonce is None and shape.safe is not None:
            pending = safe_nonce(node, EvmAddress.parse(shape.wallet.address))
        elif given.nonce is None:
            pending = node.pending_nonce(shape.wallet.address)
        executor_pending = None
        if shape.safe is not None:
            executor_pending = node.pending_nonce(shape.safe.executor.address)
    return Quote(
        EvmFill(
            gas=gas if given.gas is None else None,
            max_fee_per_gas=fill_fees.max_fee_per_gas
            if fill_fees and given.max_fee_per_gas is None
            else None,
            max_priority_fee_per_gas=fill_fees.max_priority_fee_per_gas
            if fill_fees and given.max_priority_fee_per_gas is None
            else None,
        ),
        pending,
        executor_pending,
    )


def _estimate(node: EvmNode, shape: TxShape) -> int:
    tx = {
        "from": shape.wallet.address,
        "to": str(shape.to),
        "value": hex(shape.value),
        "data": "0x" + shape.data.hex(),
    }
    try:
        return node.estimate_gas(tx)
    except NodeRefused as exc:
        raise InvalidBody(
            f"the node cannot estimate gas for this transaction (it would fail: {exc.message}); "
            "give evm.gas to send it anyway"
        ) from None


def next_nonce(session: Session, wallet_id: int, pending: int) -> int:
    """The smallest nonce from the node's pending count up that no request holds; the caller
    holds the ledger head lock."""
    candidate = pending
    for held in requests.held_nonces_from(session, wallet_id, pending):
        if held != candidate:
            break
        candidate += 1
    return candidate


def with_nonce(quote: Quote, nonce: int | None, executor_nonce: int | None = None) -> EvmFill:
    fill = quote.fill
    return EvmFill(
        nonce, fill.gas, fill.max_fee_per_gas, fill.max_priority_fee_per_gas, executor_nonce
    )


def fee_cap_problem(
    *, max_fee: int | None, per_gas: int | None, chain: Chain, max_fee_wei: int
) -> str | None:
    """The installation's cap on a transaction's whole fee, and its chain's on the fee per gas:
    what a transaction custody builds (a request's, a Safe deployment's) exceeds, if anything."""
    if max_fee is not None and max_fee > max_fee_wei:
        return (
            f"the transaction may pay up to {max_fee} wei in fees (gas x max_fee_per_gas), "
            f"above this installation's cap of {max_fee_wei} (CUSTODY_MAX_TX_FEE_WEI)"
        )
    cap = chain.max_fee_per_gas
    if cap is not None and per_gas is not None and per_gas > int(cap):
        return (
            f"max_fee_per_gas {per_gas} wei is above chain {chain.name}'s cap of {cap} "
            "(custody chains set --max-fee-per-gas)"
        )
    return None
