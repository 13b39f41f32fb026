"""What a limit has used: signed and in-flight requests in its window and scope.

The caller holds the ledger head lock (`ledger.lock`): every writer takes it, so the usage read
here includes every committed request and no concurrent request can slip in before the caller's
commits (invariant 5, on SQLite and PostgreSQL alike).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from custody.policy import RequestFacts
from custody.policy.context import EvaluationContext
from custody.policy.limits import LimitCheck, LimitUsage, check_limit, compile_limit
from custody.policy.limits_schema import Limit
from custody.requests.states import RESERVES_LIMIT
from custody.store.models import Request

IN_FLIGHT = tuple(s.value for s in RESERVES_LIMIT)


def check(
    session: Session,
    limit: Limit,
    facts: RequestFacts,
    context: EvaluationContext,
    exclude_request: str | None,
) -> LimitCheck:
    """Whether `facts` still fit `limit`; `exclude_request` is the request itself on re-check."""
    return check_limit(limit, usage(session, limit, context, exclude_request), facts.amount)


def usage(
    session: Session, limit: Limit, context: EvaluationContext, exclude_request: str | None
) -> LimitUsage:
    """Signed and in-flight requests in the window that the limit's scope covers.

    A request reserves its amount while it is live (pending approval, approved, signing) and
    keeps counting once signed; rejection, expiry, cancellation and failure release it, since
    only live statuses are counted.
    """
    now = context.require_now("a limit window")
    compiled = compile_limit(limit)
    # In-flight requests hold their reservation however long they wait; signed ones count from
    # when they were signed (signed_at, set once by the lifecycle), so a request that waited
    # longer than the window for approvals still counts in the window it was signed in.
    query = select(Request.id, Request.facts, Request.amount).where(
        or_(
            Request.status.in_(IN_FLIGHT),
            # Signed, broadcast, confirmed, and failed after signing too: its signature was
            # released, so its amount may have moved (a reverted transaction still counts).
            and_(
                Request.signed_at.is_not(None),
                Request.signed_at >= now - timedelta(seconds=limit.window),
            ),
        )
    )
    assets = limit.scope_or_short.assets
    if assets is not None:
        query = query.where(Request.asset.in_(assets))
    amount = count = 0
    for request_id, stored_facts, stored_amount in session.execute(query):
        if request_id == exclude_request or stored_facts is None:
            continue
        if compiled.applies(RequestFacts.from_json(stored_facts)):
            amount += int(stored_amount)
            count += 1
    return LimitUsage(amount=amount, count=count)
