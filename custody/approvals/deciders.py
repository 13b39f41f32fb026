"""A device-key decision on a governance question (a policy version, a ceremony, a configuration
seal) as the API and the CLI pass it: its fields checked for type, and the approver it names."""

from __future__ import annotations

from sqlalchemy.orm import Session

from custody.approvals import repository
from custody.approvals.errors import ApprovalRefused, InvalidApproval
from custody.approvals.statement import DECISIONS
from custody.store.models import Approver


def decision_fields(
    approver_name: object, decision: object, signature: object
) -> tuple[str, str, str]:
    """(approver name, decision, signature), or InvalidApproval saying which is wrong."""
    if not isinstance(approver_name, str) or not isinstance(signature, str):
        raise InvalidApproval("approver and signature must be strings")
    if not isinstance(decision, str) or decision not in DECISIONS:
        raise InvalidApproval(f"decision must be approve or reject, got {decision!r}")
    return approver_name, decision, signature


def enabled_with_device_key(session: Session, name: str) -> tuple[Approver, str]:
    """The approver of that name, enabled, with their device key; one answer otherwise."""
    approver = repository.approver_named(session, name)
    if approver is None or approver.device_public_key is None or approver.disabled_at:
        raise ApprovalRefused("no enabled approver with a device key by that name")
    return approver, approver.device_public_key
