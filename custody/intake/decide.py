"""Deciding a request: the active policy, evaluated with what it may know, and its limits.

Used at intake and again by the signer right before signing (invariant 8). The caller must hold
the ledger head lock (`ledger.lock`): every writer takes it, so the usage read here includes every
committed request and no concurrent request can slip in before this one commits (invariant 5, on
SQLite and PostgreSQL alike).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from custody.policy import Decision, Deny, RequestFacts, evaluate
from custody.policy.context import EvaluationContext
from custody.policy.evaluator import limit_by_id
from custody.policy.limits import LimitCheck, LimitUsage, check_limit, compile_limit
from custody.policy.limits_schema import Limit
from custody.policy.prices import ReferencePrices, UsdPrice
from custody.policy.settle import apply_limit_checks
from custody.policy.versions import ActivePolicy, active_policy, listed_since
from custody.requests.states import RequestStatus
from custody.store.base import utcnow
from custody.store.models import ReferencePrice, Request

IN_FLIGHT = (
    RequestStatus.PENDING_APPROVAL.value,
    RequestStatus.APPROVED.value,
    RequestStatus.SIGNING.value,
)

DEFAULT_PRICE_MAX_AGE = timedelta(hours=1)


def decide(
    session: Session,
    facts: RequestFacts,
    *,
    exclude_request: str | None,
    price_max_age: timedelta = DEFAULT_PRICE_MAX_AGE,
) -> tuple[ActivePolicy | None, Decision]:
    """The decision for `facts` now; `exclude_request` is the request itself when re-checking."""
    active = active_policy(session)
    if active is None:
        return None, Deny(None, "no policy has been applied: everything is denied")
    context = evaluation_context(session, active, price_max_age)
    decision = evaluate(active.policy, facts, context)
    if not decision.limits:
        return active, decision
    checks = [
        _check(session, limit_by_id(active.policy, limit_id), facts, context, exclude_request)
        for limit_id in decision.limits
    ]
    return active, apply_limit_checks(decision, checks)


def evaluation_context(
    session: Session, active: ActivePolicy, price_max_age: timedelta
) -> EvaluationContext:
    prices = {
        row.asset: UsdPrice.parse(row.usd_per_unit, row.decimals, row.as_of)
        for row in session.execute(select(ReferencePrice)).scalars()
    }
    return EvaluationContext(
        now=utcnow(),
        prices=ReferencePrices(prices, max_age=price_max_age),
        policy_applied_at=active.applied_at,
        listed_since=listed_since(session, active),
    )


def _check(
    session: Session,
    limit: Limit,
    facts: RequestFacts,
    context: EvaluationContext,
    exclude_request: str | None,
) -> LimitCheck:
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
    # when they were signed (updated_at, which never changes after `signed`), so a request that
    # waited longer than the window for approvals still counts in the window it was signed in.
    query = select(Request.id, Request.facts, Request.amount).where(
        or_(
            Request.status.in_(IN_FLIGHT),
            and_(
                Request.status == RequestStatus.SIGNED.value,
                Request.updated_at >= now - timedelta(seconds=limit.window),
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
