"""Governance of policy versions: the quorum a proposal needs, and what an activation ends.

A proposal is judged by the governance of the policy active when it is approved, never by the
one it was proposed under: otherwise tightening governance could be bypassed by approving an
older, looser proposal. And an activation supersedes every pending proposal, because each was
written (and reviewed, as a diff) against a policy that is no longer the active one.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.policy.loader import LoadedPolicy
from custody.policy_versions.states import PROPOSED, REJECTED
from custody.store.models import PolicyVersion

QuorumJson = list[dict[str, str | int]]


def governance_quorums(policy: LoadedPolicy | None) -> QuorumJson | None:
    """The quorums a policy's `governance` asks for, or None when it has none."""
    governance = policy.policy.governance if policy is not None else None
    if governance is None:
        return None
    return [{"count": q.count, "group": q.group} for q in governance.require_approvals.quorums]


def supersede_pending(session: Session, activated: PolicyVersion, actor: str) -> None:
    """Reject every pending proposal other than `activated`, each with its ledger entry."""
    pending = session.execute(
        select(PolicyVersion)
        .where(PolicyVersion.state == PROPOSED, PolicyVersion.id != activated.id)
        .order_by(PolicyVersion.id)
    ).scalars()
    for proposal in pending:
        proposal.state = REJECTED
        ledger.append(
            session,
            EventKind.POLICY_PROPOSAL_SUPERSEDED,
            actor,
            {
                "version": proposal.id,
                "digest": proposal.digest,
                "superseded_by": activated.id,
                "reason": f"version {activated.id} took effect after it was proposed",
            },
        )
