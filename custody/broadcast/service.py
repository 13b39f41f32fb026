"""One round of the broadcaster on one connected chain, top to bottom.

(1) the node serves the configured chain id (checked on every new connection; a node of
    another chain gets nothing, and the round stops there);
(2) every `signed` transaction is sent (`eth_sendRawTransaction`) and becomes `broadcast`; one
    whose nonce went to another transaction is `failed` (dropped); one the node refuses for
    another reason (funds missing) stays `signed` and is sent again next round;
(3) every `broadcast` one is followed: a receipt with status 0 is `failed` (reverted), status 1
    with K confirmations is `confirmed`; a receipt that disappears (a reorg) moves it back to
    waiting (`broadcast -> broadcast`), and a node that lost it (restarted without its pool) is
    sent it again.

Each status change is one lifecycle move with its ledger entry, in its own short transaction
under the request's row lock; the node is never asked anything while a transaction is open.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from custody import tracing
from custody.broadcast import repository
from custody.broadcast.repository import InFlight
from custody.chains.evm.rpc import EvmNode, NodeRefused, Receipt
from custody.requests import lifecycle
from custody.requests import repository as requests
from custody.requests.states import RequestStatus
from custody.store.database import Database
from custody.store.models import Chain

log = logging.getLogger("custody.broadcast")
ACTOR = "broadcaster"
# Error(string): what Solidity's revert("...") and require(..., "...") return.
_ERROR_SELECTOR = "0x08c379a0"


@dataclass(frozen=True)
class ChainInfo:
    id: int
    name: str
    confirmations: int


def info(chain: Chain) -> ChainInfo:
    return ChainInfo(chain.id, chain.name, chain.confirmations)


def follow_chain(db: Database, chain: ChainInfo, node: EvmNode) -> int:
    """One round; returns how many requests changed status. Raises NodeUnavailable or
    WrongChain (nothing sent) for the caller to report."""
    node.ensure_chain()  # (1)
    with db.read() as session:
        flights = repository.in_flight(session, chain.id)
    if not flights:
        return 0
    head = node.block_number()
    moved = 0
    for flight in flights:
        if flight.status is RequestStatus.SIGNED:
            with tracing.span("broadcast.send", _traced(chain, flight)) as span:
                sent = _send(db, node, flight)  # (2)
                span.set({"custody.status_changed": bool(sent)})
            moved += sent
        else:
            moved += _follow(db, chain, node, flight, head)  # (3)
    return moved


def _traced(chain: ChainInfo, flight: InFlight) -> tracing.Attributes:
    return {
        "custody.request_id": flight.request_id,
        "custody.chain": chain.name,
        "custody.tx_hash": flight.tx_hash,
        "custody.evm_nonce": flight.nonce,
    }


def _send(db: Database, node: EvmNode, flight: InFlight) -> int:
    try:
        node.send_raw(flight.raw_transaction)
    except NodeRefused as refused:
        if node.transaction(flight.tx_hash) is None:
            return _refused(db, node, flight, refused)
        # "already known", "nonce too low" for our own mined transaction: it is out there.
    return _move(db, flight, RequestStatus.BROADCAST, "accepted by the node")


def _refused(db: Database, node: EvmNode, flight: InFlight, refused: NodeRefused) -> int:
    """Dropped for good when its nonce went to another transaction; otherwise it waits and is
    sent again next round (funds may arrive, a full pool may drain), as the log says."""
    if flight.nonce is not None and node.mined_nonce(flight.wallet_address) > flight.nonce:
        return _move(db, flight, RequestStatus.FAILED, _dropped(db, flight, refused))
    log.warning("request %s: the node refuses it for now: %s", flight.request_id, refused.message)
    return 0


def _dropped(db: Database, flight: InFlight, refused: NodeRefused) -> str:
    """Why: its replacement (or the transaction it replaced) took the nonce, or someone else."""
    with db.read() as session:
        newer = requests.replacement_of(session, flight.request_id)
    if newer is not None and newer.signed_at is not None:
        return f"replaced by request {newer.id}: its transaction took nonce {flight.nonce}"
    if flight.replaces is not None:
        return (
            f"dropped: the transaction it replaced (request {flight.replaces}) took nonce "
            f"{flight.nonce}"
        )
    return (
        f"dropped: nonce {flight.nonce} was used by another transaction "
        f"(the node: {refused.message})"
    )


def _follow(db: Database, chain: ChainInfo, node: EvmNode, flight: InFlight, head: int) -> int:
    receipt = node.receipt(flight.tx_hash)
    if receipt is None:
        return _without_receipt(db, node, flight)
    depth = max(head - receipt.block_number + 1, 0)
    where: dict[str, Any] = {
        "block_number": receipt.block_number,
        "block_hash": receipt.block_hash,
        "confirmations": depth,
    }
    if receipt.status == 0:
        reason = f"reverted in block {receipt.block_number} (status 0)"
        why = _revert_reason(node, flight, receipt)
        if why:
            reason += f": {why}"
        return _move(db, flight, RequestStatus.FAILED, reason, **where)
    if depth >= chain.confirmations:
        return _move(
            db,
            flight,
            RequestStatus.CONFIRMED,
            f"{depth} confirmation(s) in block {receipt.block_number}",
            **where,
        )
    _note_depth(db, flight.request_id, receipt, depth)
    return 0


def _without_receipt(db: Database, node: EvmNode, flight: InFlight) -> int:
    moved = 0
    if flight.block_hash is not None:
        moved = _move(
            db,
            flight,
            RequestStatus.BROADCAST,
            f"its receipt in block {flight.block_hash} disappeared (a reorg): waiting again",
            block_number=None,
            block_hash=None,
            confirmations=0,
        )
    if node.transaction(flight.tx_hash) is None:
        # The node lost it (restarted without its pool, or the reorg dropped it): send again.
        # The same signed bytes, so nothing new is signed and the nonce stays the same.
        traced = {"custody.request_id": flight.request_id, "custody.tx_hash": flight.tx_hash}
        with tracing.span("broadcast.send", traced | {"custody.sent_again": True}):
            try:
                node.send_raw(flight.raw_transaction)
            except NodeRefused as refused:
                return moved + _refused(db, node, flight, refused)
        log.info("request %s: sent again, the node no longer knew it", flight.request_id)
    return moved


def _note_depth(db: Database, request_id: str, receipt: Receipt, depth: int) -> None:
    """Not a status change: where the transaction is, for `result` to show."""
    with db.write() as session:
        request = requests.locked(session, request_id, for_update=True)
        if request.status != RequestStatus.BROADCAST:
            return
        request.block_number = receipt.block_number
        request.block_hash = receipt.block_hash
        request.confirmations = depth


def _move(
    db: Database,
    flight: InFlight,
    to: RequestStatus,
    reason: str,
    **where: Any,
) -> int:
    with db.write() as session:
        return _move_in(session, flight, to, reason, where)


def _move_in(
    session: Session, flight: InFlight, to: RequestStatus, reason: str, where: dict[str, Any]
) -> int:
    request = requests.locked(session, flight.request_id, for_update=True)
    if request.status != flight.status.value:
        return 0  # another broadcaster moved it meanwhile
    for column in ("block_number", "block_hash", "confirmations"):
        if column in where:
            setattr(request, column, where[column])
    lifecycle.move(
        session,
        request,
        to,
        actor=ACTOR,
        reason=reason,
        tx_hash=flight.tx_hash,
        **where,
    )
    return 1


def _revert_reason(node: EvmNode, flight: InFlight, receipt: Receipt) -> str | None:
    """Replay the call on the state before its block, for the contract's own words."""
    tx = node.transaction(flight.tx_hash)
    if tx is None:
        return None
    call = {k: tx[k] for k in ("from", "to", "value", "input", "gas") if tx.get(k) is not None}
    if "input" in call:
        call["data"] = call.pop("input")
    try:
        node.call("eth_call", [call, hex(max(receipt.block_number - 1, 0))])
    except NodeRefused as refused:
        data = refused.data
        if isinstance(data, str) and data.startswith(_ERROR_SELECTOR):
            return _error_string(data) or refused.message
        return refused.message
    except Exception:  # a reason is a courtesy; the receipt's status 0 is what decides
        return None
    return None


def _error_string(data: str) -> str | None:
    try:
        from eth_abi.abi import decode

        (text,) = decode(["string"], bytes.fromhex(data[10:]))
    except Exception:
        return None
    return str(text)
