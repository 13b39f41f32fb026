"""What an approver sees of one request: what will be signed, decoded for a person."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.approvals.duties import is_maker
from custody.approvals.schemas import ApprovalsView
from custody.approvals.views import approvals_view
from custody.chains import format_units
from custody.chains.schemas import TransactionPayload, read_payload
from custody.freezes.schemas import WaitingView
from custody.freezes.views import waiting_for
from custody.policy.facts import RequestFacts
from custody.policy.stored import StoredDecision, read_decision
from custody.policy_versions.service import active_policy
from custody.store.models import Asset, Request
from custody.web import repository
from custody.web.repository import Row
from custody.web.sessions import SignedIn

FLAG_TEXT = {
    "delegatecall": "Delegatecall: the called code runs with this wallet's full authority",
    "unlimited_approval": "Unlimited token approval: the spender may take every token, forever",
    "self_call": "A Safe calling itself: it changes owners, threshold, modules or guard",
    "unknown_method": "Unknown contract method: custody cannot decode what this call does",
}


@dataclass(frozen=True)
class Listing:
    list_name: str
    label: str


@dataclass
class Detail:
    row: Row
    amount_units: str | None
    listings: list[Listing]
    details: dict[str, Any]
    flags: list[str]
    policy: StoredDecision
    approvals: ApprovalsView
    can_decide: bool
    why_not: str | None
    decided: str | None
    payload: TransactionPayload
    waiting: WaitingView | None
    """The freezes that hold this request now, if any (custody.freezes)."""

    @property
    def request(self) -> Request:
        return self.row.request

    @property
    def trade_lines(self) -> list[tuple[str, str]]:
        return trade_lines(self.details)


def trade_lines(details: dict[str, Any]) -> list[tuple[str, str]]:
    """A trade's two sides and its receiver, as the decoder read them from the order."""
    lines: list[tuple[str, str]] = []
    for label, key in (("Sells", "gives"), ("Buys", "receives")):
        side = details.get(key)
        if isinstance(side, dict):
            units = format_units(int(side["amount"]), int(side["decimals"]))
            lines.append((label, f"{units} {side['asset']} ({side['contract']})"))
    receiver = details.get("receiver")
    if isinstance(receiver, dict):
        whose = "this wallet" if receiver.get("is_wallet") else "NOT this wallet"
        lines.append(("Pays to", f"{receiver['address']} ({whose})"))
    return lines


def build(session: Session, row: Row, user: SignedIn) -> Detail:
    request = row.request
    facts = RequestFacts.from_json(request.facts) if request.facts is not None else None
    details = repository.intake_details(session, request)
    approvals = approvals_view(session, request)
    decided = next((d.decision for d in approvals.decisions if d.approver == user.name), None)
    why_not = _why_not(request, user, decided)
    return Detail(
        row=row,
        amount_units=_units(session, row, details),
        listings=_listings(session, row),
        details=details,
        flags=_flags(session, request, facts, details),
        policy=read_decision(request.policy_decision),
        approvals=approvals,
        can_decide=why_not is None,
        why_not=why_not,
        decided=decided,
        payload=read_payload(request.payload),
        waiting=waiting_for(session, request),
    )


@dataclass(frozen=True)
class QueueItem:
    row: Row
    amount: str
    listing: str | None
    """The allowlist label of the destination, if it is on one."""


def queue_item(session: Session, row: Row) -> QueueItem:
    units = _units(session, row, {})
    request = row.request
    amount = f"{units} {request.asset}" if units is not None else f"{request.amount} base units"
    listings = _listings(session, row)
    return QueueItem(row, amount, listings[0].label if listings else None)


def _why_not(request: Request, user: SignedIn, decided: str | None) -> str | None:
    if request.status != "pending_approval":
        return f"This request is {request.status.replace('_', ' ')}."
    if is_maker(request, user.approver_id):
        return "You started this request, so someone else must approve it."
    if decided is not None:
        return f"You already chose to {decided} this request."
    return None


def _units(session: Session, row: Row, details: dict[str, Any]) -> str | None:
    request, chain = row.request, row.chain
    decimals: int | None = None
    if request.asset == chain.native_asset:
        decimals = chain.native_decimals
    elif isinstance(details.get("token"), dict):
        decimals = int(details["token"]["decimals"])
    else:
        decimals = session.execute(
            select(Asset.decimals).where(Asset.chain_id == chain.id, Asset.symbol == request.asset)
        ).scalar_one_or_none()
    if decimals is None:
        return None
    return format_units(int(request.amount), decimals)


def _listings(session: Session, row: Row) -> list[Listing]:
    destination = row.request.destination
    return [] if destination is None else _listed(session, row.chain.name, destination)


def _listed(session: Session, chain: str, address: str) -> list[Listing]:
    active = active_policy(session)
    if active is None:
        return []
    return [
        Listing(name, entry.label)
        for name, entries in sorted(active.policy.policy.allowlists.items())
        for entry in entries
        if entry.chain == chain and entry.address.lowercase == address.lower()
    ]


def _flags(
    session: Session, request: Request, facts: RequestFacts | None, details: dict[str, Any]
) -> list[str]:
    flags = [FLAG_TEXT.get(f, f) for f in sorted(facts.call_flags)] if facts else []
    flags += _new_destinations(session, request, facts)
    if facts is not None and len(facts.destinations) > 1:
        # "To" shows the first address: every other output of a batch is named here
        flags.append(f"Batch: pays {len(facts.destinations)} addresses (every output below)")
        flags.extend(
            f"Batch output to {address} is not on any allowlist"
            for address in facts.destinations[1:]
            if not _listed(session, facts.chain, address)
        )
    receiver = details.get("receiver")
    if isinstance(receiver, dict) and receiver.get("is_wallet") is False:
        flags.append(f"Pays someone else: what the order buys goes to {receiver['address']}")
    venue = (facts.venue if facts else None) or details.get("venue")
    if request.type == "trade" and venue and not repository.venue_used(session, request, venue):
        flags.append(f"First use of venue {venue}: no earlier trade was signed for it")
    return flags


def _new_destinations(session: Session, request: Request, facts: RequestFacts | None) -> list[str]:
    """Every address the request pays that no earlier signed request paid: a batch's second
    output is as new to the approver as its first."""
    batch = list(facts.destinations) if facts is not None else []
    addresses = batch or ([request.destination] if request.destination else [])
    seen = repository.destinations_paid_before(session, request, addresses)
    new = [address for address in addresses if address.lower() not in seen]
    if not batch:
        return ["New destination: no earlier signed request sent anything here"] if new else []
    return [f"New destination {address}: no earlier signed request paid it" for address in new]


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "—"
