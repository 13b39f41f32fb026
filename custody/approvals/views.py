"""The `approvals` part of a request's view: what its policy decision needs and who decided.

Two moments, one shape: at intake nobody has decided yet (`before_any`, also what the first answer
and its idempotent replays show); afterwards the live state, counted as the signer would count it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from custody.approvals import repository
from custody.approvals.quorum import quorum_state
from custody.approvals.schemas import (
    ApprovalDecisionView,
    ApprovalsView,
    QuorumRequirementView,
    QuorumView,
)
from custody.policy.stored import PolicyRequireApprovals, StoredDecision, read_decision
from custody.store.models import Request


def approvals_view(session: Session, request: Request) -> ApprovalsView:
    decision = read_decision(request.policy_decision)
    state = quorum_state(session, request.id, decision)
    return ApprovalsView(
        required=sum(r.count for r in state.requirements),
        group=_single_group(decision),
        quorum=state.view(),
        decisions=decisions_on(session, request.id),
        expires_at=_rfc3339(request.expires_at) if request.expires_at else None,
    )


def before_any(request: Request, decision: StoredDecision) -> ApprovalsView:
    quorums = decision.quorums()
    return ApprovalsView(
        required=sum(q.count for q in quorums),
        group=_single_group(decision),
        quorum=QuorumView(
            required=[QuorumRequirementView(group=q.group, count=q.count) for q in quorums],
            received={q.group: [] for q in quorums},
            met=not quorums,
        ),
        decisions=[],
        expires_at=_rfc3339(request.expires_at) if request.expires_at else None,
    )


def decisions_on(session: Session, request_id: str) -> list[ApprovalDecisionView]:
    rows = repository.decisions_with_names(session, request_id)
    return [
        ApprovalDecisionView(
            approver=name, decision=a.decision, method=a.method, at=_rfc3339(a.created_at)
        )
        for a, name in rows
    ]


def _single_group(decision: StoredDecision) -> str | None:
    return decision.group if isinstance(decision, PolicyRequireApprovals) else None


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
