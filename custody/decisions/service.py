"""Deciding a request: the active policy, evaluated with what it may know, and its limits.

Used at intake, by the signer right before signing (invariant 8) and by the policy simulator.
The caller must hold the ledger head lock (`ledger.lock`) for limits to hold (custody.limits).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from custody.limits import usage
from custody.policy import Decision, Deny, RequestFacts, evaluate
from custody.policy.context import EvaluationContext
from custody.policy.evaluator import limit_by_id
from custody.policy.prices import ReferencePrices
from custody.policy.settle import apply_limit_checks
from custody.policy_versions.service import ActivePolicy, active_policy, listed_since
from custody.prices.service import reference_table
from custody.store.base import utcnow

DEFAULT_PRICE_MAX_AGE = timedelta(hours=1)


def decide(
    session: Session,
    facts: RequestFacts,
    *,
    exclude_request: str | None,
    price_max_age: timedelta = DEFAULT_PRICE_MAX_AGE,
    believe: usage.Believe | None = None,
) -> tuple[ActivePolicy | None, Decision]:
    """The decision for `facts` now; `exclude_request` is the request itself when re-checking.

    `believe`: the signer's; limits then count other requests from their own evidence, not
    their rows (custody.limits.usage), and raise CountedEvidenceRefused when one does not hold.
    """
    active = active_policy(session)
    if active is None:
        return None, Deny(None, "no policy has been applied: everything is denied")
    context = evaluation_context(session, active, price_max_age)
    decision = evaluate(active.policy, facts, context)
    if not decision.limits:
        return active, decision
    checks = [
        usage.check(
            session,
            limit_by_id(active.policy, limit_id),
            facts,
            context,
            exclude_request,
            believe=believe,
        )
        for limit_id in decision.limits
    ]
    return active, apply_limit_checks(decision, checks)


def evaluation_context(
    session: Session, active: ActivePolicy, price_max_age: timedelta
) -> EvaluationContext:
    return EvaluationContext(
        now=utcnow(),
        prices=ReferencePrices(reference_table(session), max_age=price_max_age),
        policy_applied_at=active.applied_at,
        listed_since=listed_since(session, active),
    )
