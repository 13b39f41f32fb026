"""One-time enrolment invites: checked, then consumed by a registered passkey."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.approvals.approvers import hash_token
from custody.store.base import utcnow
from custody.store.models import Approver, EnrolmentInvite
from custody.web.errors import InviteInvalid

NOT_VALID = "this enrolment link is not valid: it expired, was used already, or was mistyped"


def valid_invite(
    session: Session, token: str, *, for_update: bool = False
) -> tuple[EnrolmentInvite, Approver]:
    query = select(EnrolmentInvite).where(EnrolmentInvite.token_hash == hash_token(token))
    if for_update:
        query = query.with_for_update()
    invite = session.execute(query).scalar_one_or_none() if len(token) <= 200 else None
    if invite is None or invite.used_at is not None or invite.expires_at <= utcnow():
        raise InviteInvalid(NOT_VALID)
    approver = session.get(Approver, invite.approver_id)
    if approver is None or approver.disabled_at is not None:
        raise InviteInvalid(NOT_VALID)
    return invite, approver
