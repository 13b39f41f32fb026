"""Queries of the web app: an approver's queue, history, and what a request's page needs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from custody.approvals.duties import is_maker
from custody.approvals.quorum import required_groups
from custody.chains.schemas import Eip712Payload, read_payload
from custody.policy.facts import RequestFacts
from custody.policy.stored import read_decision
from custody.requests.states import RequestStatus
from custody.store.models import Approval, Chain, LedgerEntry, Request, Wallet
from custody.web.errors import RequestHidden
from custody.web.sessions import SignedIn

QUEUE_SCAN = 500
HISTORY_LIMIT = 100


@dataclass(frozen=True)
class Row:
    request: Request
    wallet: Wallet
    chain: Chain


def _rows(query: Any, session: Session) -> list[Row]:
    return [Row(r, w, c) for r, w, c in session.execute(query)]


def _base() -> Any:
    return (
        select(Request, Wallet, Chain)
        .join(Wallet, Wallet.id == Request.wallet_id)
        .join(Chain, Chain.id == Wallet.chain_id)
    )


def queue(session: Session, user: SignedIn) -> list[Row]:
    """Pending requests that need one of my groups, newest first, those I decided left out."""
    decided = select(Approval.request_id).where(Approval.approver_id == user.approver_id)
    query = (
        _base()
        .where(
            Request.status == RequestStatus.PENDING_APPROVAL.value,
            Request.id.not_in(decided),
        )
        .order_by(Request.created_at.desc(), Request.id.desc())
        .limit(QUEUE_SCAN)
    )
    mine = set(user.groups)
    return [
        row
        for row in _rows(query, session)
        if required_groups(read_decision(row.request.policy_decision)) & mine
        or is_maker(row.request, user.approver_id)
    ]


def history(session: Session, user: SignedIn) -> list[tuple[Row, Approval]]:
    query = (
        select(Request, Wallet, Chain, Approval)
        .join(Wallet, Wallet.id == Request.wallet_id)
        .join(Chain, Chain.id == Wallet.chain_id)
        .join(Approval, Approval.request_id == Request.id)
        .where(Approval.approver_id == user.approver_id)
        .order_by(Approval.created_at.desc(), Approval.id.desc())
        .limit(HISTORY_LIMIT)
    )
    return [(Row(r, w, c), a) for r, w, c, a in session.execute(query)]


def visible(session: Session, user: SignedIn, request_id: str) -> Row:
    """A request an approver may look at: one their groups decide, one they made or decided."""
    found = _rows(_base().where(Request.id == request_id), session)
    if not found:
        raise RequestHidden(f"no request {request_id!r}")
    row = found[0]
    related = (
        required_groups(read_decision(row.request.policy_decision)) & set(user.groups)
        or is_maker(row.request, user.approver_id)
        or session.execute(
            select(Approval.id).where(
                Approval.request_id == request_id, Approval.approver_id == user.approver_id
            )
        ).first()
    )
    if not related:
        raise RequestHidden(f"no request {request_id!r}")
    return row


def intake_details(session: Session, request: Request) -> dict[str, Any]:
    """The decoder's `details` (method, arguments, EIP-712 fields) from `request.created`."""
    window = timedelta(seconds=30)
    entries = session.execute(
        select(LedgerEntry.entry).where(
            LedgerEntry.kind == "request.created",
            LedgerEntry.time >= request.created_at - window,
            LedgerEntry.time <= request.created_at + window,
        )
    ).scalars()
    for raw in entries:
        data = json.loads(raw).get("data", {})
        if data.get("request") == request.id:
            details = data.get("details")
            return details if isinstance(details, dict) else {}
    return {}


def destinations_paid_before(session: Session, request: Request, addresses: list[str]) -> set[str]:
    """Which of `addresses` (lower-cased) an earlier signed request of any wallet paid: as its
    destination, or as another output of a batch (which only the batch's facts name)."""
    earlier = (
        Request.signed_at.is_not(None),  # ever signed: also broadcast, confirmed, sent
        Request.created_at < request.created_at,
    )
    wanted = {address.lower() for address in addresses}
    destination = func.lower(Request.destination)
    seen = set(
        session.execute(
            select(destination).where(*earlier, destination.in_(wanted)).distinct()
        ).scalars()
    )
    rest = wanted - seen
    if not rest:
        return seen
    # Facts naming an address are a cheap first cut; the parsed facts decide, since a wallet's
    # own address is named there too.
    named = [func.lower(Request.facts).contains(f'"{a}"', autoescape=True) for a in rest]
    query = select(Request.facts).where(*earlier, or_(*named)).execution_options(yield_per=200)
    with session.execute(query) as result:  # closed when the answer is known early
        for facts in filter(None, result.scalars()):  # the condition holds only for text
            batch = RequestFacts.from_json(facts).destinations
            seen.update(rest.intersection(d.lower() for d in batch))
            if seen >= wanted:
                break
    return seen


def venue_used(session: Session, request: Request, venue: str) -> bool:
    """Whether an earlier signed trade went to this venue."""
    payloads = session.execute(
        select(Request.payload).where(
            Request.signed_at.is_not(None),  # ever signed: also broadcast, confirmed, sent
            Request.type == "trade",
            Request.created_at < request.created_at,
        )
    ).scalars()
    return any(
        isinstance(stored, Eip712Payload) and stored.venue == venue
        for stored in map(read_payload, payloads)
    )
