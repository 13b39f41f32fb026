"""Governance of key ceremonies: under `governance`, a ceremony runs only once its quorum signed.

When the active policy has `governance`, `custody ceremony backup` and `restore`, `custody ledger
rotate-key` and `custody keys retire` each need a *proposal* naming exactly what the command will
do (its kind and *subject*: folder, shares and threshold, custodians; the manifest's digest; the
key), made by `custody ceremony propose …`, and the device-key approvals of the governance
quorum. Each approver signs the RFC 8785 canonical JSON of

    {"type": "custody.ceremony_approval.v1", "proposal": "<id>", "ceremony": "<kind>",
     "subject_sha256": "<hex>", "decision": "approve" | "reject", "approver": "<name>"}

where `subject_sha256` is the SHA-256 of the RFC 8785 JSON of {"ceremony": kind, **subject}.
The ceremony command computes that digest from what it is about to do, and counts only approvals
whose signatures verify over the statement for *that* digest now, by enabled approvers in a
governing group (counted by custody.approvals.engine, like policy proposals and unfreezes): an
approval of another ceremony, or a row written into the database without a valid signature,
counts for nothing. The proposal is used once, in the transaction that records the ceremony.
Without governance, ceremonies run as they always did, and the ledger records who ran them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import rfc8785
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from custody.approvals import repository
from custody.approvals.deciders import decision_fields, enabled_with_device_key
from custody.approvals.engine import QuorumState, Requirement, count_quorum, parse_requirements
from custody.approvals.errors import (
    ApprovalConflict,
    ApprovalRefused,
    BadApprovalSignature,
    InvalidApproval,
)
from custody.approvals.quorum import votes_now
from custody.approvals.statement import verify_device_signature
from custody.errors import Conflict, Forbidden, NotFound
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.policy_versions.governance import QuorumJson, governance_quorums
from custody.policy_versions.service import active_policy
from custody.store.base import utcnow
from custody.store.models import Approver, CeremonyApproval, CeremonyProposal

STATEMENT_TYPE = "custody.ceremony_approval.v1"
KINDS = ("backup", "restore", "rotate-ledger-key", "retire-key")
PENDING, REJECTED, USED = "pending", "rejected", "used"


class QuorumMissing(Forbidden):
    title = "Ceremony not approved"
    slug = "ceremony-quorum-missing"


class Ungoverned(Conflict):
    title = "No governance"
    slug = "ceremony-ungoverned"


def subject_sha256(kind: str, subject: dict[str, Any]) -> str:
    return hashlib.sha256(rfc8785.dumps({"ceremony": kind, **subject})).hexdigest()


def statement(proposal_id: int, kind: str, digest: str, approver: str, decision: str) -> bytes:
    body = {
        "type": STATEMENT_TYPE,
        "proposal": str(proposal_id),
        "ceremony": kind,
        "subject_sha256": digest,
        "decision": decision,
        "approver": approver,
    }
    return bytes(rfc8785.dumps(body))


def statement_template(row: CeremonyProposal) -> dict[str, str]:
    """The statement without `decision` and `approver`, which each approver adds."""
    return {
        "type": STATEMENT_TYPE,
        "proposal": str(row.id),
        "ceremony": row.kind,
        "subject_sha256": row.subject_sha256,
    }


def governance(session: Session) -> QuorumJson | None:
    active = active_policy(session)
    return governance_quorums(active.policy if active is not None else None)


def propose(session: Session, kind: str, subject: dict[str, Any], actor: str) -> CeremonyProposal:
    """The pending proposal of exactly this ceremony: the one already waiting, or a new one."""
    if kind not in KINDS:
        raise InvalidApproval(f"unknown ceremony {kind!r}")
    ledger.lock(session)
    quorums = governance(session)
    if quorums is None:
        raise Ungoverned(
            "the active policy has no governance: ceremonies run without a proposal "
            "(the ledger records who ran them)"
        )
    digest = subject_sha256(kind, subject)
    waiting = repository.ceremony_proposals_for(session, kind, digest)
    if waiting:
        return waiting[0]
    row = CeremonyProposal(
        kind=kind,
        subject=rfc8785.dumps(subject).decode(),
        subject_sha256=digest,
        state=PENDING,
        required_approvals=json.dumps(quorums),
        proposed_by=actor,
        proposed_at=utcnow(),
    )
    session.add(row)
    session.flush()
    ledger.append(
        session,
        EventKind.CEREMONY_PROPOSED,
        actor,
        {
            "proposal": row.id,
            "ceremony": kind,
            "subject": subject,
            "subject_sha256": digest,
            "required_approvals": quorums,
            "statement": statement_template(row),
        },
    )
    return row


@dataclass(frozen=True)
class VerifiedDecision:
    """A decision whose signature verified, and what it was verified against: the write
    transaction records it only if the proposal and the approver's key are still the same."""

    proposal_id: int
    approver_id: str
    decision: str
    statement: bytes
    signature: str
    public_key: str


@dataclass(frozen=True)
class Decided:
    proposal_id: int
    state: str
    quorum: QuorumState


def verify_decision(
    session: Session,
    *,
    proposal_id: int,
    approver_name: object,
    decision: object,
    signature: object,
) -> VerifiedDecision:
    """Check one approver's decision on a pending proposal (from the CLI or `POST
    /v1/ceremonies/proposals/{id}/approvals`), in a read transaction: anyone may post one, and
    a signature check under the write lock would hold up every other writer meanwhile."""
    name, decision, signature = decision_fields(approver_name, decision, signature)
    row = repository.ceremony_proposal(session, proposal_id, for_update=False)
    if row is None:
        raise NotFound(f"no ceremony proposal {proposal_id}")
    _check_pending(row)
    approver, public_key = enabled_with_device_key(session, name)
    signed = statement(row.id, row.kind, row.subject_sha256, approver.name, decision)
    if not verify_device_signature(public_key, signature, signed):
        raise BadApprovalSignature(
            "signature does not verify over this proposal's statement (RFC 8785 of type, "
            "proposal, ceremony, subject_sha256, decision, approver)"
        )
    return VerifiedDecision(row.id, approver.id, decision, signed, signature, public_key)


def record_decision(session: Session, verified: VerifiedDecision) -> Decided:
    """Record a verified decision under the ledger lock, after checking again what may have
    changed since it was verified: the proposal's state, the approver, the governance."""
    ledger.lock(session)
    row = repository.ceremony_proposal(session, verified.proposal_id, for_update=True)
    if row is None:
        raise NotFound(f"no ceremony proposal {verified.proposal_id}")
    _check_pending(row)
    approver = session.get(Approver, verified.approver_id)
    if approver is None or approver.disabled_at or approver.device_public_key is None:
        raise ApprovalRefused("no enabled approver with a device key by that name")
    if approver.device_public_key != verified.public_key:
        raise ApprovalRefused("the approver's device key changed while the approval was verified")
    required = _governance_now(session)
    groups = repository.membership(session, [approver.id]).get(approver.id, set())
    if not {r.group for r in required} & groups:
        raise ApprovalRefused(f"approver {approver.name} is not in a group that governs custody")
    _store(session, row, approver, verified)
    if verified.decision == "reject":
        row.state, row.decided_at = REJECTED, utcnow()
        ledger.append(
            session,
            EventKind.CEREMONY_PROPOSAL_REJECTED,
            f"approver:{approver.id}",
            {"proposal": row.id, "ceremony": row.kind, "by": approver.name},
        )
    return Decided(row.id, row.state, _count(session, row, row.subject_sha256, required))


def _check_pending(row: CeremonyProposal) -> None:
    if row.state != PENDING:
        raise ApprovalConflict(f"ceremony proposal {row.id} is {row.state}, not pending")


@dataclass(frozen=True)
class Authorisation:
    proposal_id: int
    quorum: QuorumState


def authorised(session: Session, kind: str, subject: dict[str, Any]) -> Authorisation | None:
    """None without governance; otherwise the pending proposal of exactly this ceremony whose
    verified approvals meet the quorum now. Raises QuorumMissing when there is none."""
    quorums = governance(session)
    if quorums is None:
        return None
    required = parse_requirements(quorums)
    needs = ", ".join(f"{r.count} from {r.group}" for r in required)
    digest = subject_sha256(kind, subject)
    short: tuple[CeremonyProposal, QuorumState] | None = None
    for row in repository.ceremony_proposals_for(session, kind, digest):
        quorum = _count(session, row, digest, required)
        if quorum.met:
            return Authorisation(row.id, quorum)
        short = short or (row, quorum)
    if short is None:
        raise QuorumMissing(
            f"the governance of this installation ({needs}) must approve this {kind} first: "
            f"propose it with `custody ceremony propose {kind}` and exactly these arguments, "
            "have the approvers sign it (custody ceremony approve), then run this again"
        )
    row, quorum = short
    raise QuorumMissing(
        f"ceremony proposal {row.id} has {quorum.counted} valid approval(s); the governance "
        f"requires {needs} (custody ceremony approve {row.id} …)"
    )


def use(session: Session, kind: str, subject: dict[str, Any]) -> dict[str, Any]:
    """In the transaction that records the ceremony: its approved proposal is used up. What
    the ceremony's ledger entry carries: nothing without governance, else the proposal and who
    approved it."""
    ledger.lock(session)
    found = authorised(session, kind, subject)
    if found is None:
        return {}
    row = repository.ceremony_proposal(session, found.proposal_id, for_update=True)
    if row is None or row.state != PENDING:
        raise ApprovalConflict(f"ceremony proposal {found.proposal_id} was used meanwhile")
    row.state, row.decided_at = USED, utcnow()
    return {
        "proposal": row.id,
        "approved_by": {g: list(names) for g, names in found.quorum.approved_by.items()},
    }


def _store(
    session: Session, row: CeremonyProposal, approver: Approver, verified: VerifiedDecision
) -> None:
    try:
        with session.begin_nested():
            session.add(
                CeremonyApproval(
                    proposal_id=row.id,
                    approver_id=approver.id,
                    decision=verified.decision,
                    statement=verified.statement,
                    evidence=json.dumps(
                        {"signature": verified.signature, "public_key": verified.public_key}
                    ),
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        raise ApprovalConflict(
            f"{approver.name} already decided on ceremony proposal {row.id}"
        ) from None
    ledger.append(
        session,
        EventKind.APPROVAL_ADDED,
        f"approver:{approver.id}",
        {
            "ceremony_proposal": row.id,
            "approver": approver.name,
            "decision": verified.decision,
            "statement": verified.statement.decode(),
            "evidence": {"signature": verified.signature},
        },
    )


def _governance_now(session: Session) -> tuple[Requirement, ...]:
    quorums = governance(session)
    if quorums is None:
        raise Ungoverned("the active policy has no governance any more: ceremonies need no quorum")
    return parse_requirements(quorums)


def _count(
    session: Session, row: CeremonyProposal, digest: str, required: tuple[Requirement, ...]
) -> QuorumState:
    """The quorum from approvals whose signatures verify now over the statement for `digest`
    (the ceremony about to run), by enabled approvers with the device key they have now."""
    voters = [
        (approver.id, approver.name)
        for approval, approver in repository.ceremony_decisions(session, row.id)
        if approval.decision == "approve" and _holds(row, digest, approval, approver)
    ]
    return count_quorum(required, votes_now(session, voters))


def _holds(
    row: CeremonyProposal, digest: str, approval: CeremonyApproval, approver: Approver
) -> bool:
    if approver.disabled_at is not None or approver.device_public_key is None:
        return False
    expected = statement(row.id, row.kind, digest, approver.name, "approve")
    signature = json.loads(approval.evidence).get("signature")
    return isinstance(signature, str) and verify_device_signature(
        approver.device_public_key, signature, expected
    )
