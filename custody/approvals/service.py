"""Recording an approval or rejection, and what it does to the request.

Runs in the caller's write transaction, under the ledger head lock (like intake and the signer),
so two approvals of one request are judged one after the other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from custody.approvals.approvers import groups_of
from custody.approvals.duties import refuse_maker
from custody.approvals.engine import QuorumState
from custody.approvals.errors import ApprovalConflict, ApprovalRefused
from custody.approvals.quorum import quorum_state, requirements
from custody.approvals.statement import statement_bytes
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.policy.stored import read_decision
from custody.requests import lifecycle
from custody.requests import repository as requests
from custody.requests.states import RequestStatus
from custody.store.base import utcnow
from custody.store.models import Approval, Approver, Request


@dataclass(frozen=True)
class ApprovalOutcome:
    request_id: str
    status: str
    quorum: QuorumState
    refusal: ApprovalRefused | None = None
    """Set when the request expired instead: the expiry commits, then the caller refuses."""

    def raise_refusal(self) -> None:
        """Call once the transaction committed."""
        if self.refusal is not None:
            raise self.refusal


def statement_for(request: Request, approver: Approver, decision: str) -> bytes:
    return statement_bytes(
        request_id=request.id,
        payload_digest=request.digest,
        decision=decision,
        approver=approver.name,
    )


def record(
    session: Session,
    *,
    request_id: str,
    approver: Approver,
    decision: str,
    method: str,
    evidence: dict[str, Any],
    statement: bytes,
) -> ApprovalOutcome:
    """Store one approval whose signature the caller verified over `statement`.

    Takes the ledger head lock only now, after the (slow, possibly hostile) verification.
    """
    ledger.lock(session)
    request = requests.locked(session, request_id, for_update=True)
    decided = read_decision(request.policy_decision)
    if expire_if_due(session, request):
        refusal = ApprovalRefused(f"request {request.id} expired before this approval")
        return ApprovalOutcome(
            request.id, request.status, quorum_state(session, request.id, decided), refusal
        )
    if request.status == RequestStatus.EXPIRED:
        raise ApprovalRefused(f"request {request.id} expired before this approval")
    if statement != statement_for(request, approver, decision):
        raise ApprovalConflict(f"request {request.id} changed while the approval was verified")
    if request.status != RequestStatus.PENDING_APPROVAL:
        raise ApprovalConflict(f"request {request.id} is {request.status}, not awaiting approval")
    _check_approver(session, request, approver)
    groups = groups_of(session, approver.id)
    try:
        with session.begin_nested():
            session.add(
                Approval(
                    request_id=request.id,
                    approver_id=approver.id,
                    decision=decision,
                    statement=statement,
                    method=method,
                    evidence=json.dumps(evidence, sort_keys=True),
                    groups=json.dumps(list(groups)),
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        raise ApprovalConflict(f"{approver.name} already decided on request {request.id}") from None
    ledger.append(
        session,
        EventKind.APPROVAL_ADDED,
        f"approver:{approver.id}",
        {
            "request": request.id,
            "approver": approver.name,
            "decision": decision,
            "method": method,
            "statement": statement.decode(),
            "evidence": evidence,
            "groups": list(groups),
        },
    )
    if decision == "reject":
        lifecycle.move(
            session,
            request,
            RequestStatus.REJECTED,
            actor="approvals",
            reason=f"rejected by approver {approver.name}",
        )
    else:
        state = quorum_state(session, request.id, decided)
        if state.met:
            lifecycle.move(
                session,
                request,
                RequestStatus.APPROVED,
                actor="approvals",
                reason="quorum reached",
                quorum=state.as_dict(),
            )
    return ApprovalOutcome(request.id, request.status, quorum_state(session, request.id, decided))


def _check_approver(session: Session, request: Request, approver: Approver) -> None:
    if approver.disabled_at is not None:
        raise ApprovalRefused(f"approver {approver.name} is disabled")
    refuse_maker(request, approver.id)
    required = {r.group for r in requirements(read_decision(request.policy_decision))}
    if not required & set(groups_of(session, approver.id)):
        raise ApprovalRefused(
            f"approver {approver.name} is not in a group this request needs "
            f"({', '.join(sorted(required))})"
        )


def _is_due(request: Request) -> bool:
    return (
        request.status == RequestStatus.PENDING_APPROVAL
        and request.expires_at is not None
        and request.expires_at <= utcnow()
    )


def expire_if_due(session: Session, request: Request) -> bool:
    """Move a pending request past its deadline to `expired` (releasing its limit reservation)."""
    if not _is_due(request):
        return False
    lifecycle.move(
        session,
        request,
        RequestStatus.EXPIRED,
        actor="approvals",
        reason="approvals were not complete before the deadline",
    )
    return True


def expire_due(session: Session, limit: int = 500) -> int:
    """The expiry sweep run by workers: every pending request whose deadline passed."""
    ledger.lock(session)
    due = requests.waiting_past_deadline(session, utcnow(), limit)
    return sum(1 for request in due if expire_if_due(session, request))
