"""Approvals signed by an approver's device key, posted over the API."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.approvals import service
from custody.approvals.errors import ApprovalRefused, BadApprovalSignature, InvalidApproval
from custody.approvals.statement import DECISIONS, verify_device_signature
from custody.errors import NotFound
from custody.store.models import Approver, Request


def approve_with_device_key(
    session: Session,
    *,
    request_id: str,
    approver_name: object,
    decision: object,
    signature: object,
) -> service.ApprovalOutcome:
    if not isinstance(approver_name, str) or not isinstance(signature, str):
        raise InvalidApproval("approver and signature must be strings")
    if decision not in DECISIONS:
        raise InvalidApproval(f"decision must be approve or reject, got {decision!r}")
    request = session.get(Request, request_id)
    if request is None:
        raise NotFound(f"no request {request_id!r}")
    approver = session.execute(
        select(Approver).where(Approver.name == approver_name)
    ).scalar_one_or_none()
    if approver is None or approver.device_public_key is None:
        # The same answer whether the name is unknown or has no device key: no probing.
        raise ApprovalRefused("no approver with a device key by that name")
    statement = service.statement_for(request, approver, str(decision))
    if not verify_device_signature(approver.device_public_key, signature, statement):
        raise BadApprovalSignature(
            "signature does not verify over this request's approval statement "
            "(RFC 8785 of type, request_id, payload_digest, decision, approver)"
        ) from None
    return service.record(
        session,
        request_id=request.id,
        approver=approver,
        decision=str(decision),
        method="device_key",
        evidence={"signature": signature, "public_key": approver.device_public_key},
    )
