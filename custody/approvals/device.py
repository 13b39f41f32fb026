"""Approvals signed by an approver's device key, posted over the API.

Verified in a read transaction, recorded in a write transaction: anyone can post here, so the
signature check must not hold the database's write lock or the ledger head lock.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from custody.approvals import repository, service
from custody.approvals.errors import ApprovalRefused, BadApprovalSignature, InvalidApproval
from custody.approvals.statement import DECISIONS, verify_device_signature
from custody.errors import NotFound
from custody.store.models import Approver, Request


@dataclass(frozen=True)
class VerifiedApproval:
    request_id: str
    approver_id: str
    decision: str
    statement: bytes
    signature: str
    public_key: str


def verify_device_approval(
    session: Session,
    *,
    request_id: str,
    approver_name: object,
    decision: object,
    signature: object,
) -> VerifiedApproval:
    if not isinstance(approver_name, str) or not isinstance(signature, str):
        raise InvalidApproval("approver and signature must be strings")
    if decision not in DECISIONS:
        raise InvalidApproval(f"decision must be approve or reject, got {decision!r}")
    request = session.get(Request, request_id)
    if request is None:
        raise NotFound(f"no request {request_id!r}")
    approver = repository.approver_named(session, approver_name)
    if approver is None or approver.device_public_key is None:
        # The same answer whether the name is unknown or has no device key: no probing.
        raise ApprovalRefused("no approver with a device key by that name")
    statement = service.statement_for(request, approver, str(decision))
    if not verify_device_signature(approver.device_public_key, signature, statement):
        raise BadApprovalSignature(
            "signature does not verify over this request's approval statement "
            "(RFC 8785 of type, request_id, payload_digest, decision, approver)"
        ) from None
    return VerifiedApproval(
        request.id, approver.id, str(decision), statement, signature, approver.device_public_key
    )


def record_device_approval(session: Session, verified: VerifiedApproval) -> service.ApprovalOutcome:
    approver = session.get(Approver, verified.approver_id)
    if approver is None or approver.device_public_key != verified.public_key:
        raise ApprovalRefused("the approver's device key changed while the approval was verified")
    return service.record(
        session,
        request_id=verified.request_id,
        approver=approver,
        decision=verified.decision,
        method="device_key",
        evidence={"signature": verified.signature, "public_key": verified.public_key},
        statement=verified.statement,
    )
