"""Queries of the broadcaster: the transactions in flight on a chain."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from custody.requests.states import RequestStatus
from custody.store.models import Request, Wallet

IN_FLIGHT = (RequestStatus.SIGNED.value, RequestStatus.BROADCAST.value)


@dataclass(frozen=True)
class InFlight:
    request_id: str
    status: RequestStatus
    raw_transaction: str
    tx_hash: str
    nonce: int | None
    block_hash: str | None
    wallet_address: str
    replaces: str | None


def in_flight(session: Session, chain_id: int) -> list[InFlight]:
    """Signed and broadcast transactions of the chain's wallets, oldest nonce first per sender,
    so a node receives them in an order it can mine. A Safe wallet's transaction is its
    executor's `execTransaction`: the executor's address and account nonce are what count."""
    executor = aliased(Wallet)
    sender = func.coalesce(executor.address, Wallet.address)
    nonce = func.coalesce(Request.executor_nonce, Request.evm_nonce)
    rows = session.execute(
        select(
            Request.id,
            Request.status,
            Request.result_raw,
            Request.result_tx_hash,
            nonce,
            Request.block_hash,
            sender,
            Request.replaces,
        )
        .join(Wallet, Wallet.id == Request.wallet_id)
        .outerjoin(executor, executor.id == Request.executor_wallet_id)
        .where(
            Wallet.chain_id == chain_id,
            Request.status.in_(IN_FLIGHT),
            Request.result_raw.is_not(None),
        )
        .order_by(sender, nonce, Request.id)
    ).all()
    return [
        InFlight(r[0], RequestStatus(r[1]), r[2], r[3], r[4], r[5], r[6], r[7])
        for r in rows
        if r[2] is not None and r[3] is not None
    ]


def pending_amounts(session: Session, wallet_id: int) -> list[tuple[str, str]]:
    """(asset, amount) of the wallet's requests that are live and not yet confirmed."""
    live = (
        RequestStatus.PENDING_APPROVAL.value,
        RequestStatus.APPROVED.value,
        RequestStatus.SIGNING.value,
        RequestStatus.SIGNED.value,
        RequestStatus.BROADCAST.value,
    )
    return [
        (asset, amount)
        for asset, amount in session.execute(
            select(Request.asset, Request.amount).where(
                Request.wallet_id == wallet_id, Request.status.in_(live)
            )
        )
    ]
