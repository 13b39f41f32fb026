"""Separation of duties (invariant 6): the one place that says a maker never checks.

A request started by a person in the approver app records them as its maker
(`Request.requested_by_approver`); that person may follow it but never decide on it. The API
(device keys), the web app (its buttons and its passkey prompt) and the signer's quorum count all
ask here.
"""

from __future__ import annotations

from custody.approvals.errors import ApprovalRefused
from custody.store.models import Request

MAKER_REFUSED = "a requester never approves its own request; someone else must approve it"


def is_maker(request: Request, approver_id: str) -> bool:
    return (
        request.requested_by_approver is not None and request.requested_by_approver == approver_id
    )


def refuse_maker(request: Request, approver_id: str) -> None:
    if is_maker(request, approver_id):
        raise ApprovalRefused(MAKER_REFUSED)
