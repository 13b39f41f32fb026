"""Whether a request's approvals meet what its policy decision requires, judged now.

Only approvals by approvers who are enabled and still in the required group count (invariant 6):
disabling an approver or removing them from a group takes effect at once, also for requests
already pending. An approver counts once, towards one group requirement at most.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.approvals.schemas import QuorumRequirementView, QuorumView
from custody.policy.stored import StoredDecision
from custody.store.models import Approval, Approver, ApproverGroup


@dataclass(frozen=True)
class Requirement:
    group: str
    count: int


@dataclass(frozen=True)
class QuorumState:
    requirements: tuple[Requirement, ...]
    approved_by: dict[str, tuple[str, ...]]
    """group -> names of approvers whose approval counts for it now."""

    @property
    def met(self) -> bool:
        return all(len(self.approved_by.get(r.group, ())) >= r.count for r in self.requirements)

    def view(self) -> QuorumView:
        return QuorumView(
            required=[
                QuorumRequirementView(group=r.group, count=r.count) for r in self.requirements
            ],
            received={g: list(names) for g, names in sorted(self.approved_by.items())},
            met=self.met,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "required": [{"group": r.group, "count": r.count} for r in self.requirements],
            "received": {g: list(names) for g, names in sorted(self.approved_by.items())},
            "met": self.met,
        }


def requirements(decision: StoredDecision) -> tuple[Requirement, ...]:
    return tuple(Requirement(q.group, q.count) for q in decision.quorums())


def required_groups(decision: StoredDecision) -> set[str]:
    return {q.group for q in decision.quorums()}


def count_towards(
    reqs: tuple[Requirement, ...],
    approvers: list[tuple[str, str]],
    membership: dict[str, set[str]],
) -> dict[str, tuple[str, ...]]:
    """group -> names counted for it: each approver (id, name), in order, counts once, towards
    the first requirement of theirs still short."""
    counted: dict[str, list[str]] = {r.group: [] for r in reqs}
    for approver_id, name in approvers:
        for req in reqs:
            if (
                req.group in membership.get(approver_id, set())
                and len(counted[req.group]) < req.count
            ):
                counted[req.group].append(name)
                break
    return {group: tuple(names) for group, names in counted.items()}


def current_membership(session: Session, approver_ids: list[str]) -> dict[str, set[str]]:
    membership: dict[str, set[str]] = {}
    for approver_id, group in session.execute(
        select(ApproverGroup.approver_id, ApproverGroup.group).where(
            ApproverGroup.approver_id.in_(approver_ids)
        )
    ):
        membership.setdefault(approver_id, set()).add(group)
    return membership


def quorum_state(session: Session, request_id: str, decision: StoredDecision) -> QuorumState:
    reqs = requirements(decision)
    rows = [
        (a, n)
        for a, n in session.execute(
            select(Approval.approver_id, Approver.name)
            .join(Approver, Approver.id == Approval.approver_id)
            .where(
                Approval.request_id == request_id,
                Approval.decision == "approve",
                Approver.disabled_at.is_(None),
            )
            .order_by(Approval.id)
        )
    ]
    membership = current_membership(session, [a for a, _ in rows])
    return QuorumState(reqs, count_towards(reqs, rows, membership))
