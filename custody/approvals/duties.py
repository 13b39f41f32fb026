"""Separation of duties (invariant 6): the one place that says a maker never checks.

Only people in a group an operator granted `maker` may start a request in the approver app. Such
a request records them as its maker (`Request.requested_by_approver`); that person may follow
it but never decide on it. The API (device keys), the web app (its buttons and its passkey
prompt) and the signer's quorum count all ask here.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from custody.approvals.approvers import may_make
from custody.approvals.errors import ApprovalRefused, MakerRefused
from custody.store.models import Request

MAKER_REFUSED = "a requester never approves its own request; someone else must approve it"
NOT_A_MAKER = (
    "starting withdrawals needs the maker permission, and none of your groups has it; "
    "an operator grants it to a group (custody approvers grant GROUP maker)"
)


def is_maker(request: Request, approver_id: str) -> bool:
    return (
        request.requested_by_approver is not None and request.requested_by_approver == approver_id
    )


def refuse_maker(request: Request, approver_id: str) -> None:
    if is_maker(request, approver_id):
        raise ApprovalRefused(MAKER_REFUSED)


def refuse_unless_maker(session: Session, approver_id: str) -> None:
    if not may_make(session, approver_id):
        raise MakerRefused(NOT_A_MAKER)
