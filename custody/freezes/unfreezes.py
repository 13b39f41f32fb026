"""Lifting freezes: at once, or under governance once its quorum has signed.

Without `governance` in the active policy, `custody unfreeze` lifts at once. With it, the command
records a pending lift (an *unfreeze*) and each approver's device key signs the RFC 8785 canonical
JSON of

    {"type": "custody.unfreeze.v1", "freeze": "<freeze id>", "unfreeze": "<unfreeze id>",
     "decision": "approve" | "reject", "approver": "<name>"}

posted to `POST /v1/freezes/{freeze id}/approvals`. The unfreeze id binds a signature to this one
attempt: an approval given to an earlier, rejected attempt cannot be replayed for a later one.
One rejection ends the attempt; the freeze lifts when the approvals meet the governance quorum
of the policy active at that moment (as policy proposals do, custody.approvals.policy_approvals),
counted by custody.approvals.engine. Every stored approval is verified again when counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import rfc8785
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from custody.approvals import repository as approvers
from custody.approvals.deciders import decision_fields
from custody.approvals.engine import QuorumState, Requirement, count_quorum, parse_requirements
from custody.approvals.errors import (
    ApprovalConflict,
    ApprovalRefused,
    BadApprovalSignature,
)
from custody.approvals.quorum import votes_now
from custody.approvals.statement import verify_device_signature
from custody.errors import Conflict, NotFound
from custody.freezes import repository
from custody.freezes.service import FreezeInvalid, check_reason, describe_scope, lift
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.policy.loader import LoadedPolicy
from custody.policy_versions.governance import QuorumJson, governance_quorums
from custody.policy_versions.service import active_policy
from custody.store.base import utcnow
from custody.store.models import Approver, Freeze, Unfreeze, UnfreezeApproval
from custody.wallets.repository import wallet_by_name

STATEMENT_TYPE = "custody.unfreeze.v1"
PENDING, APPLIED, REJECTED = "pending", "applied", "rejected"


class NotFrozen(Conflict):
    title = "Not frozen"
    slug = "not-frozen"


@dataclass(frozen=True)
class Outcome:
    """What `custody unfreeze` did: freezes lifted at once, or lifts now waiting for a quorum."""

    lifted: list[Freeze]
    pending: list[Unfreeze]


def unfreeze(
    session: Session, *, wallet: str | None, freeze_id: int | None, reason: str, actor: str
) -> Outcome:
    """Lift the active freezes of a scope (the installation, or `wallet`), or one by id."""
    text = check_reason(reason)
    if wallet is not None and freeze_id is not None:
        raise FreezeInvalid("name a wallet or one freeze, not both")
    ledger.lock(session)
    targets = _targets(session, wallet, freeze_id)
    quorums = governance_quorums(_active(session))
    if quorums is None:
        for row in targets:
            lift(session, row, by=actor, reason=text)
        return Outcome(targets, [])
    return Outcome([], [_request(session, row, text, actor, quorums) for row in targets])


def _targets(session: Session, wallet: str | None, freeze_id: int | None) -> list[Freeze]:
    if freeze_id is not None:
        row = repository.by_id(session, freeze_id, for_update=True)
        if row is None:
            raise NotFound(f"no freeze {freeze_id}")
        if row.lifted_at is not None:
            raise NotFrozen(f"freeze {freeze_id} was lifted already")
        return [row]
    wallet_id = None if wallet is None else wallet_by_name(session, wallet).id
    rows = repository.active_in_scope(session, wallet_id)
    if not rows:
        raise NotFrozen(f"{describe_scope(wallet)} is not frozen (`custody freezes` lists freezes)")
    return rows


def _request(
    session: Session, row: Freeze, reason: str, actor: str, quorums: QuorumJson
) -> Unfreeze:
    """The pending lift of `row`: the one already waiting (asking again changes nothing, its
    reason included), or a new one with its ledger entry."""
    waiting = repository.pending_unfreeze(session, row.id)
    if waiting is not None:
        return waiting
    pending = Unfreeze(
        freeze_id=row.id,
        reason=reason,
        requested_by=actor,
        requested_at=utcnow(),
        state=PENDING,
        required_approvals=json.dumps(quorums),
    )
    session.add(pending)
    session.flush()
    ledger.append(
        session,
        EventKind.SIGNING_UNFREEZE_REQUESTED,
        actor,
        {
            "freeze": row.id,
            "unfreeze": pending.id,
            "reason": reason,
            "required_approvals": quorums,
            "statement": statement_template(pending),
        },
    )
    return pending


def statement_template(unfreeze: Unfreeze) -> dict[str, str]:
    """The statement without `decision` and `approver`, which each approver adds."""
    return {"type": STATEMENT_TYPE, "freeze": str(unfreeze.freeze_id), "unfreeze": str(unfreeze.id)}


def statement(unfreeze: Unfreeze, approver: str, decision: str) -> bytes:
    body = statement_template(unfreeze) | {"decision": decision, "approver": approver}
    return bytes(rfc8785.dumps(body))


@dataclass(frozen=True)
class VerifiedDecision:
    unfreeze_id: int
    approver_id: str
    decision: str
    statement: bytes
    signature: str
    public_key: str


def verify_decision(
    session: Session, *, freeze_id: int, approver_name: object, decision: object, signature: object
) -> VerifiedDecision:
    """Check one device-key decision, in a read transaction: anyone may post one, so the
    signature is checked before any write lock is taken."""
    approver_name, decision, signature = decision_fields(approver_name, decision, signature)
    if repository.by_id(session, freeze_id) is None:
        raise NotFound(f"no freeze {freeze_id}")
    pending = repository.pending_unfreeze(session, freeze_id)
    if pending is None:
        raise ApprovalConflict(
            f"freeze {freeze_id} has no lift waiting for approvals (`custody unfreeze` asks)"
        )
    approver = approvers.approver_named(session, approver_name)
    if approver is None or approver.device_public_key is None:
        # The same answer whether the name is unknown or has no device key: no probing.
        raise ApprovalRefused("no approver with a device key by that name")
    signed = statement(pending, approver.name, decision)
    if not verify_device_signature(approver.device_public_key, signature, signed):
        raise BadApprovalSignature(
            "signature does not verify over this unfreeze's statement (RFC 8785 of type, "
            "freeze, unfreeze, decision, approver)"
        )
    return VerifiedDecision(
        pending.id, approver.id, decision, signed, signature, approver.device_public_key
    )


@dataclass(frozen=True)
class Decided:
    freeze_id: int
    unfreeze_id: int
    state: str
    lifted: bool
    quorum: QuorumState


def record_decision(session: Session, verified: VerifiedDecision) -> Decided:
    """Record a verified decision; lift the freeze once the governance quorum is met."""
    ledger.lock(session)
    pending = repository.unfreeze_by_id(session, verified.unfreeze_id, for_update=True)
    if pending.state != PENDING:
        raise ApprovalConflict(f"unfreeze {pending.id} is {pending.state}, not pending")
    approver = session.get(Approver, verified.approver_id)
    if approver is None or approver.disabled_at is not None:
        raise ApprovalRefused("no enabled approver with a device key by that name")
    if approver.device_public_key != verified.public_key:
        raise ApprovalRefused("the approver's device key changed while the approval was verified")
    required = _governance_now(session)
    if not {r.group for r in required} & _groups(session, approver.id):
        raise ApprovalRefused(f"approver {approver.name} is not in a group that governs custody")
    _store(session, pending, approver, verified)
    quorum = _count(session, pending, required)
    if verified.decision == "reject":
        pending.state, pending.decided_at = REJECTED, utcnow()
        ledger.append(
            session,
            EventKind.SIGNING_UNFREEZE_REJECTED,
            f"approver:{approver.id}",
            {"freeze": pending.freeze_id, "unfreeze": pending.id, "by": approver.name},
        )
        return Decided(pending.freeze_id, pending.id, REJECTED, False, quorum)
    if quorum.met:
        pending.state, pending.decided_at = APPLIED, utcnow()
        row = repository.by_id(session, pending.freeze_id, for_update=True)
        if row is None or row.lifted_at is not None:  # a lift supersedes pending unfreezes
            raise ApprovalConflict(f"freeze {pending.freeze_id} is not active any more")
        lift(
            session,
            row,
            by="approvals",
            reason=pending.reason,
            unfreeze=pending,
            approved_by={g: list(names) for g, names in quorum.approved_by.items()},
        )
    return Decided(pending.freeze_id, pending.id, pending.state, quorum.met, quorum)


def _store(
    session: Session, pending: Unfreeze, approver: Approver, verified: VerifiedDecision
) -> None:
    try:
        with session.begin_nested():
            session.add(
                UnfreezeApproval(
                    unfreeze_id=pending.id,
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
            f"{approver.name} already decided on unfreeze {pending.id}"
        ) from None
    ledger.append(
        session,
        EventKind.APPROVAL_ADDED,
        f"approver:{approver.id}",
        {
            "freeze": pending.freeze_id,
            "unfreeze": pending.id,
            "approver": approver.name,
            "decision": verified.decision,
            "statement": verified.statement.decode(),
            "evidence": {"signature": verified.signature},
        },
    )


def _governance_now(session: Session) -> tuple[Requirement, ...]:
    quorums = governance_quorums(_active(session))
    if quorums is None:
        raise ApprovalConflict(
            "the active policy has no governance any more: `custody unfreeze` lifts at once"
        )
    return parse_requirements(quorums)


def _count(session: Session, pending: Unfreeze, required: tuple[Requirement, ...]) -> QuorumState:
    """The quorum from approvals whose signatures verify now, by enabled approvers with the
    device key they have now: a row an insider added or edited counts for nothing."""
    voters = [
        (approver.id, approver.name)
        for approval, approver in repository.decisions_on(session, pending.id)
        if approval.decision == "approve" and _still_holds(pending, approval, approver)
    ]
    return count_quorum(required, votes_now(session, voters))


def _still_holds(pending: Unfreeze, approval: UnfreezeApproval, approver: Approver) -> bool:
    if approver.disabled_at is not None or approver.device_public_key is None:
        return False
    expected = statement(pending, approver.name, "approve")
    signature = json.loads(approval.evidence).get("signature")
    return (
        approval.statement == expected
        and isinstance(signature, str)
        and verify_device_signature(approver.device_public_key, signature, expected)
    )


def _groups(session: Session, approver_id: str) -> set[str]:
    return approvers.membership(session, [approver_id]).get(approver_id, set())


def _active(session: Session) -> LoadedPolicy | None:
    active = active_policy(session)
    return active.policy if active is not None else None
