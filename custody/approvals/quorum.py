"""Whether a request's approvals meet what its policy decision requires, judged now.

Only approvals by approvers who are enabled and still in the required group count (invariant 6):
disabling an approver or removing them from a group takes effect at once, also for requests
already pending. This module reads approvals and current membership from the database; the
counting itself is custody.approvals.engine, shared with policy governance.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.approvals.engine import (
    QuorumState,
    Requirement,
    Vote,
    count_quorum,
    parse_requirements,
)
from custody.store.models import Approval, Approver, ApproverGroup


def requirements(decision: dict[str, Any]) -> tuple[Requirement, ...]:
    """What a policy decision asks for: nothing unless it is require_approvals (ValueError if a
    require_approvals decision names no quorum)."""
    if decision.get("decision") != "require_approvals":
        return ()
    groups = decision.get("all_of") or [{"group": decision["group"], "count": decision["count"]}]
    return parse_requirements(groups)


def required_groups(decision_json: str) -> set[str]:
    return {r.group for r in requirements(json.loads(decision_json))}


def current_membership(session: Session, approver_ids: list[str]) -> dict[str, set[str]]:
    membership: dict[str, set[str]] = {}
    for approver_id, group in session.execute(
        select(ApproverGroup.approver_id, ApproverGroup.group).where(
            ApproverGroup.approver_id.in_(approver_ids)
        )
    ):
        membership.setdefault(approver_id, set()).add(group)
    return membership


def votes_now(session: Session, approvers: Iterable[tuple[str, str]]) -> tuple[Vote, ...]:
    """Votes for approvers given as (id, name) in approval order, with the groups they are in now
    rather than when they approved."""
    rows = list(approvers)
    membership = current_membership(session, [approver_id for approver_id, _ in rows])
    return tuple(
        Vote(approver_id, name, frozenset(membership.get(approver_id, ())))
        for approver_id, name in rows
    )


def quorum_state(session: Session, request_id: str, decision: dict[str, Any]) -> QuorumState:
    rows = session.execute(
        select(Approval.approver_id, Approver.name)
        .join(Approver, Approver.id == Approval.approver_id)
        .where(
            Approval.request_id == request_id,
            Approval.decision == "approve",
            Approver.disabled_at.is_(None),
        )
        .order_by(Approval.id)
    )
    return count_quorum(requirements(decision), votes_now(session, rows))
