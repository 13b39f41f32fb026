"""Queries over requests."""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import and_, bindparam, func, or_, select, union
from sqlalchemy.orm import Session

from custody.errors import NotFound
from custody.ledger.events import EventKind
from custody.requests.states import TRAITS, RequestStatus
from custody.store.models import LIVE_STATUSES, NONCE_HELD, Chain, LedgerEntry, Request, Wallet

# Built once: building a statement and its cache key cost as much as running it, and intake
# and the long polls run these on every call.
_BY_IDEMPOTENCY_KEY = select(Request).where(
    Request.client_id == bindparam("client"), Request.idempotency_key == bindparam("key")
)
_STATUS_FOR_CLIENT = select(Request.status).where(
    Request.id == bindparam("id"), Request.client_id == bindparam("client")
)


def by_idempotency_key(session: Session, client_id: str, key: str) -> Request | None:
    return session.execute(
        _BY_IDEMPOTENCY_KEY, {"client": client_id, "key": key}
    ).scalar_one_or_none()


def live_for_nonce(session: Session, wallet_id: int, nonce: int) -> Request | None:
    """The request that holds the nonce now: the newest generation, when replacements of a
    stuck transaction hold it too."""
    return (
        session.execute(
            select(Request)
            .where(
                or_(
                    (Request.wallet_id == wallet_id) & (Request.evm_nonce == nonce),
                    # the execTransaction a Safe request sends from this (executor) wallet
                    (Request.executor_wallet_id == wallet_id) & (Request.executor_nonce == nonce),
                ),
                NONCE_HELD,
            )
            .order_by(Request.nonce_generation.desc())
            .limit(1)
        )
        .scalars()
        .first()
    )


def replacement_of(session: Session, request_id: str) -> Request | None:
    return session.execute(
        select(Request).where(Request.replaces == request_id, NONCE_HELD)
    ).scalar_one_or_none()


def held_nonces_from(session: Session, wallet_id: int, start: int) -> list[int]:
    """The nonces from `start` up that live (or once signed) requests of the wallet hold: its
    own transactions', and the `execTransaction`s it sends for Safe wallets."""
    own = select(Request.evm_nonce.label("nonce")).where(
        Request.wallet_id == wallet_id,
        Request.evm_nonce >= start,
        NONCE_HELD,
    )
    executed = select(Request.executor_nonce.label("nonce")).where(
        Request.executor_wallet_id == wallet_id,
        Request.executor_nonce >= start,
        NONCE_HELD,
    )
    both = union(own, executed).subquery()
    held = {
        int(nonce) for nonce in session.execute(select(both.c.nonce)).scalars() if nonce is not None
    }
    return sorted(held | deploy_nonces_from(session, wallet_id, start))


def deploy_nonces_from(session: Session, wallet_id: int, start: int) -> set[int]:
    """Nonces of the wallet that `custody wallets deploy` signed (ledgered before they were
    sent): no request takes them. Few entries of a rare kind, read from the ledger itself."""
    nonces = set()
    for entry in session.execute(
        select(LedgerEntry.entry).where(LedgerEntry.kind == EventKind.WALLET_DEPLOY_SIGNED.value)
    ).scalars():
        data = json.loads(entry)["data"]
        if data.get("executor_wallet_id") == wallet_id and int(data["nonce"]) >= start:
            nonces.add(int(data["nonce"]))
    return nonces


def nonce_holders(session: Session, wallet_id: int) -> int:
    """How many requests not yet settled hold a nonce of the wallet (own or as executor)."""
    unsettled = (
        RequestStatus.PENDING_APPROVAL.value,
        RequestStatus.APPROVED.value,
        RequestStatus.SIGNING.value,
        RequestStatus.SIGNED.value,
        RequestStatus.BROADCAST.value,
    )
    return int(
        session.execute(
            select(func.count())
            .select_from(Request)
            .where(
                or_(
                    (Request.wallet_id == wallet_id) & Request.evm_nonce.is_not(None),
                    Request.executor_wallet_id == wallet_id,
                ),
                Request.status.in_(unsettled),
            )
        ).scalar_one()
    )


def signable_on_wallets(session: Session, wallet_ids: list[int]) -> list[Request]:
    """Requests of these wallets that a signer may take now or is taking: `approved` or
    `signing` (custody.keys.retirement refuses to destroy their key under them)."""
    return list(
        session.execute(
            select(Request)
            .where(
                Request.wallet_id.in_(wallet_ids),
                Request.status.in_((RequestStatus.APPROVED, RequestStatus.SIGNING)),
            )
            .order_by(Request.created_at)
        ).scalars()
    )


def for_client(session: Session, client_id: str, request_id: str) -> tuple[Request, str]:
    """A client's own request; anyone else's is indistinguishable from a missing one."""
    row = session.execute(
        select(Request, Wallet.name)
        .join(Wallet, Wallet.id == Request.wallet_id)
        .where(Request.id == request_id, Request.client_id == client_id)
    ).first()
    if row is None:
        raise NotFound(f"no request {request_id!r}")
    return row[0], row[1]


def status_for_client(session: Session, client_id: str, request_id: str) -> str | None:
    """A client's own request's status alone: what a woken long poll reads first."""
    return session.execute(
        _STATUS_FOR_CLIENT, {"id": request_id, "client": client_id}
    ).scalar_one_or_none()


def settled(session: Session, request: Request) -> bool:
    """Whether nothing will move `request` any more: a final status, or signed with no way on
    (a signature, or a transaction on a chain without a node for custody.broadcast to send)."""
    status = RequestStatus(request.status)
    if TRAITS[status].terminal:
        return True
    if status is not RequestStatus.SIGNED:
        return False
    if request.result_raw is None:
        return True
    node = session.execute(
        select(Chain.rpc_url)
        .join(Wallet, Wallet.chain_id == Chain.id)
        .where(Wallet.id == request.wallet_id)
    ).scalar_one_or_none()
    return node is None


def page_for_client(
    session: Session,
    client_id: str,
    *,
    status: RequestStatus | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[tuple[Request, str]]:
    """Newest first; the cursor is the (created_at, id) of the last row already seen."""
    query = (
        select(Request, Wallet.name)
        .join(Wallet, Wallet.id == Request.wallet_id)
        .where(Request.client_id == client_id)
    )
    if status is not None:
        query = query.where(Request.status == status.value)
    if after is not None:
        created_at, request_id = after
        query = query.where(
            or_(
                Request.created_at < created_at,
                and_(Request.created_at == created_at, Request.id < request_id),
            )
        )
    query = query.order_by(Request.created_at.desc(), Request.id.desc()).limit(limit)
    return [(r, name) for r, name in session.execute(query)]


def next_to_sign(
    session: Session,
    now: datetime,
    *,
    skip_locked: bool,
    excluding_wallets: Collection[int],
    excluding_requests: Collection[str] = (),
) -> Request | None:
    """An approved request, or one whose signing lease ran out (its worker died), of a wallet
    not in `excluding_wallets` (frozen ones), and not in `excluding_requests` (found waiting)."""
    query = (
        select(Request)
        .where(
            or_(
                Request.status == RequestStatus.APPROVED.value,
                and_(Request.status == RequestStatus.SIGNING.value, Request.lease_until < now),
            )
        )
        .order_by(Request.updated_at)
        .limit(1)
    )
    if excluding_wallets:
        query = query.where(Request.wallet_id.not_in(sorted(excluding_wallets)))
    if excluding_requests:
        query = query.where(Request.id.not_in(sorted(excluding_requests)))
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    return session.execute(query).scalar_one_or_none()


def waiting_past_deadline(session: Session, now: datetime, limit: int) -> list[Request]:
    """Requests still waiting for approvals whose deadline has passed (the expiry sweep)."""
    return list(
        session.execute(
            select(Request)
            .where(
                Request.status == RequestStatus.PENDING_APPROVAL.value,
                Request.expires_at <= now,
            )
            .limit(limit)
        ).scalars()
    )


def locked(session: Session, request_id: str, *, for_update: bool) -> Request:
    """The request as committed now. populate_existing matters: an object this session loaded
    before waiting for the row lock would otherwise keep its stale status (PostgreSQL), and a
    rejection or cancellation committed meanwhile would go unseen."""
    query = (
        select(Request).where(Request.id == request_id).execution_options(populate_existing=True)
    )
    if for_update:
        query = query.with_for_update()
    return session.execute(query).scalar_one()


def waiting_for_client(session: Session, client_id: str) -> list[Request]:
    """The client's requests not yet claimed by a signer (pending approval or approved)."""
    waiting = (RequestStatus.PENDING_APPROVAL.value, RequestStatus.APPROVED.value)
    return list(
        session.execute(
            select(Request)
            .where(Request.client_id == client_id, Request.status.in_(waiting))
            .order_by(Request.created_at)
            .with_for_update()
        ).scalars()
    )


def live_of_type(session: Session, wallet_id: int, request_type: str) -> list[Request]:
    """The wallet's live requests of one type (Bitcoin PSBTs: whose coins are taken)."""
    return list(
        session.execute(
            select(Request).where(
                Request.wallet_id == wallet_id,
                Request.type == request_type,
                Request.status.in_(LIVE_STATUSES),
            )
        ).scalars()
    )
