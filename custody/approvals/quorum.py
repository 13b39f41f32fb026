"""Whether a request's approvals meet what its policy decision requires, judged now.

Only approvals by approvers who are enabled and still in the required group count (invariant 6):
disabling an approver or removing them from a group takes effect at once, also for requests
already pending. This module reads approvals and current membership from the database; the
counting itself is custody.approvals.engine, shared with policy governance.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from custody.approvals import repository
from custody.approvals.engine import (
    QuorumState,
    Requirement,
    Vote,
    count_quorum,
    parse_requirements,
)
from custody.policy.stored import StoredDecision


def requirements(decision: StoredDecision) -> tuple[Requirement, ...]:
    """What a policy decision asks for: nothing unless it is require_approvals (ValueError if a
    require_approvals decision names no quorum)."""
    quorums = decision.quorums()
    if decision.decision != "require_approvals":
        return ()
    return parse_requirements({"group": q.group, "count": q.count} for q in quorums)


def required_groups(decision: StoredDecision) -> set[str]:
    return {q.group for q in decision.quorums()}


def votes_now(session: Session, approvers: Iterable[tuple[str, str]]) -> tuple[Vote, ...]:
    """Votes for approvers given as (id, name) in approval order, with the groups they are in now
    rather than when they approved."""
    rows = list(approvers)
    membership = repository.membership(session, (approver_id for approver_id, _ in rows))
    return tuple(
        Vote(approver_id, name, frozenset(membership.get(approver_id, ())))
        for approver_id, name in rows
    )


def quorum_state(session: Session, request_id: str, decision: StoredDecision) -> QuorumState:
    rows = repository.enabled_approvals(session, request_id)
    return count_quorum(requirements(decision), votes_now(session, rows))
