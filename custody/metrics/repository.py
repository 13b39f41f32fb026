"""The queries of custody.metrics: a few aggregates per scrape, none of them per row."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ColumnElement, case, cast, func, select
from sqlalchemy.orm import Session

from custody.requests.states import RequestStatus
from custody.store.models import (
    Approval,
    Freeze,
    LedgerCheckpoint,
    LedgerHead,
    Request,
    WebhookDelivery,
)


def requests_by_type_and_status(session: Session) -> list[tuple[str, str, int]]:
    rows = session.execute(
        select(Request.type, Request.status, func.count()).group_by(Request.type, Request.status)
    )
    return [(kind, status, count) for kind, status, count in rows]


def _decision_field(session: Session, name: str) -> ColumnElement[str | None]:
    """One member of the stored decision's JSON, in the database's own JSON functions: grouping
    by the whole column would group by its reason text too."""
    if session.get_bind().dialect.name == "sqlite":
        return func.json_extract(Request.policy_decision, f"$.{name}")
    return func.json_extract_path_text(cast(Request.policy_decision, JSON), name)


def decisions_by_rule(session: Session) -> list[tuple[str, str | None, int]]:
    decision = _decision_field(session, "decision")
    rule = _decision_field(session, "rule")
    rows = session.execute(select(decision, rule, func.count()).group_by(decision, rule))
    return [(str(d), r, count) for d, r, count in rows]


def ledger_size(session: Session) -> int:
    size = session.execute(select(LedgerHead.size).where(LedgerHead.id == 1)).scalar()
    return int(size or 0)


def newest_checkpoint(session: Session) -> tuple[int, datetime] | None:
    row = session.execute(
        select(LedgerCheckpoint.tree_size, LedgerCheckpoint.created_at)
        .order_by(LedgerCheckpoint.tree_size.desc())
        .limit(1)
    ).first()
    return None if row is None else (int(row[0]), row[1])


def webhook_deliveries_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
    )
    return {str(status): int(count) for status, count in rows}


def active_freezes(session: Session) -> list[tuple[str, str, int]]:
    """(scope, source, count) of the active freezes; scope `installation` or `wallet`."""
    scope = case((Freeze.wallet_id.is_(None), "installation"), else_="wallet")
    rows = session.execute(
        select(scope, Freeze.source, func.count())
        .where(Freeze.lifted_at.is_(None))
        .group_by(scope, Freeze.source)
    )
    return [(str(s), str(source), int(count)) for s, source, count in rows]


def signing_times_since(session: Session, cutoff: datetime) -> list[tuple[datetime, datetime]]:
    """(created_at, signed_at) of every request signed since `cutoff`: one hour's signatures."""
    rows = session.execute(
        select(Request.created_at, Request.signed_at).where(Request.signed_at >= cutoff)
    )
    return [(created, signed) for created, signed in rows if signed is not None]


# A request in one of these went past its quorum; the others never reached it (or not yet).
_PAST_QUORUM = (
    RequestStatus.APPROVED,
    RequestStatus.SIGNING,
    RequestStatus.SIGNED,
    RequestStatus.BROADCAST,
    RequestStatus.CONFIRMED,
    RequestStatus.FAILED,
)


def approval_times_since(session: Session, cutoff: datetime) -> list[tuple[datetime, datetime]]:
    """(created_at, last approval) of every request whose quorum was met since `cutoff`: the
    approval that completed a quorum is the request's last `approve`."""
    last = func.max(Approval.created_at)
    rows = session.execute(
        select(Request.created_at, last)
        .join(Approval, Approval.request_id == Request.id)
        .where(Approval.decision == "approve", Request.status.in_([s.value for s in _PAST_QUORUM]))
        .group_by(Request.id, Request.created_at)
        .having(last >= cutoff)
    )
    return [(created, approved) for created, approved in rows]
