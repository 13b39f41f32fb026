"""Governance: approving a proposed policy version.

The statement an approver signs is the RFC 8785 canonical JSON of {"type":
"custody.policy_approval.v1", "version", "policy_digest", "decision", "approver"}: bound to the
exact text (by its digest) that will take effect. Counting is the request quorum engine
(custody.approvals.engine): an approver counts once, only while enabled and in the required group.
The quorum is the governance of the policy active now (custody.policy_versions.governance), not
the one recorded when the version was proposed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import rfc8785
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from custody.approvals.approvers import groups_of
from custody.approvals.deciders import decision_fields, enabled_with_device_key
from custody.approvals.engine import Requirement, count_quorum, parse_requirements
from custody.approvals.errors import (
    ApprovalConflict,
    ApprovalRefused,
    BadApprovalSignature,
)
from custody.approvals.quorum import votes_now
from custody.approvals.statement import verify_device_signature
from custody.errors import NotFound
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.policy_versions.governance import governance_quorums
from custody.policy_versions.service import active_policy, mark_applied
from custody.policy_versions.states import PROPOSED, REJECTED
from custody.store.base import utcnow
from custody.store.models import Approver, PolicyApproval, PolicyVersion

STATEMENT_TYPE = "custody.policy_approval.v1"


def policy_statement(version: PolicyVersion, approver: str, decision: str) -> bytes:
    return statement_for(version.id, version.digest, approver, decision)


def statement_for(version_id: int, policy_digest: str, approver: str, decision: str) -> bytes:
    return bytes(
        rfc8785.dumps(
            {
                "type": STATEMENT_TYPE,
                "version": str(version_id),
                "policy_digest": policy_digest,
                "decision": decision,
                "approver": approver,
            }
        )
    )


@dataclass(frozen=True)
class VerifiedDecision:
    """A decision whose signature verified, and what it was verified against: the write
    transaction records it only if the proposal and the approver's key are still the same."""

    version_id: int
    approver_id: str
    decision: str
    statement: bytes
    signature: str
    public_key: str


def verify_decision(
    session: Session,
    *,
    version_id: int,
    approver_name: object,
    decision: object,
    signature: object,
) -> VerifiedDecision:
    """Check one decision on a proposed version, in a read transaction: anyone may post one,
    and a signature check under the write lock would hold up every other writer meanwhile."""
    name, decision, signature = decision_fields(approver_name, decision, signature)
    version = _proposed(session, version_id)
    approver, public_key = enabled_with_device_key(session, name)
    _governance_now(session, version)
    statement = policy_statement(version, approver.name, decision)
    _verify(public_key, signature, statement)
    return VerifiedDecision(version.id, approver.id, decision, statement, signature, public_key)


def record_decision(session: Session, verified: VerifiedDecision) -> str:
    """Record a verified decision under the ledger lock, after checking again what may have
    changed since it was verified; returns the proposal's state afterwards."""
    ledger.lock(session)
    version = _proposed(session, verified.version_id)
    approver = session.get(Approver, verified.approver_id)
    if approver is None or approver.device_public_key is None or approver.disabled_at:
        raise ApprovalRefused("no enabled approver with a device key by that name")
    if approver.device_public_key != verified.public_key:
        raise ApprovalRefused("the approver's device key changed while the approval was verified")
    required = _governance_now(session, version)
    if not {r.group for r in required} & set(groups_of(session, approver.id)):
        raise ApprovalRefused(f"approver {approver.name} is not in a group governing policy")
    try:
        with session.begin_nested():
            session.add(
                PolicyApproval(
                    version_id=version.id,
                    approver_id=approver.id,
                    decision=verified.decision,
                    statement=verified.statement,
                    evidence=json.dumps({"signature": verified.signature}),
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        raise ApprovalConflict(f"{approver.name} already decided on version {version.id}") from None
    ledger.append(
        session,
        EventKind.APPROVAL_ADDED,
        f"approver:{approver.id}",
        {
            "policy_version": version.id,
            "approver": approver.name,
            "decision": verified.decision,
            "statement": verified.statement.decode(),
            "evidence": {"signature": verified.signature},
        },
    )
    if verified.decision == "reject":
        version.state = REJECTED
        ledger.append(
            session,
            EventKind.POLICY_PROPOSAL_REJECTED,
            "approvals",
            {"version": version.id, "by": approver.name},
        )
    elif _quorum_met(session, version.id, required):
        mark_applied(session, version, "approvals", "governance quorum reached")
    return version.state


def _proposed(session: Session, version_id: int) -> PolicyVersion:
    version = session.get(PolicyVersion, version_id)
    if version is None or version.required_approvals is None:
        raise NotFound(f"no policy proposal {version_id}")
    if version.state != PROPOSED:
        raise ApprovalConflict(f"policy version {version_id} is {version.state}, not proposed")
    return version


def _governance_now(session: Session, version: PolicyVersion) -> tuple[Requirement, ...]:
    """The quorum that decides `version`: the active policy's governance, as of now."""
    active = active_policy(session)
    quorums = governance_quorums(active.policy if active else None)
    if active is None or quorums is None:
        # Every activation supersedes pending proposals, so only a database written before
        # that rule can get here; without a governing quorum nobody may decide (fail closed).
        raise ApprovalConflict(f"policy version {version.id} has no governance to approve it")
    if version.id < active.version_id:
        # Same origin: approving it would record an activation that active_policy ignores.
        raise ApprovalConflict(
            f"policy version {version.id} is older than the active version {active.version_id}"
        )
    return parse_requirements(quorums)


def _verify(public_key_hex: str, signature: str, statement: bytes) -> None:
    if not verify_device_signature(public_key_hex, signature, statement):
        raise BadApprovalSignature(
            "signature does not verify over this proposal's statement (RFC 8785 of type, "
            "version, policy_digest, decision, approver)"
        )


def _quorum_met(session: Session, version_id: int, required: tuple[Requirement, ...]) -> bool:
    rows = session.execute(
        select(PolicyApproval.approver_id, Approver.name)
        .join(Approver, Approver.id == PolicyApproval.approver_id)
        .where(
            PolicyApproval.version_id == version_id,
            PolicyApproval.decision == "approve",
            Approver.disabled_at.is_(None),
        )
        .order_by(PolicyApproval.id)
    )
    return count_quorum(required, votes_now(session, rows)).met
