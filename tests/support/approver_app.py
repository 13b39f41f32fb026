"""Signing in to the approver app in tests: a person with no device key, in some groups."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from custody.approvals.approvers import add_approver
from custody.web import sessions
from tests.support.installation import Installation


def session_cookie(inst: Installation, groups: Sequence[str], *, prefix: str = "checker") -> str:
    """The session cookie's value of a new approver in `groups` (for `sessions.COOKIE_NAME`)."""
    with inst.runtime.db.write() as session:
        approver = add_approver(
            session,
            name=f"{prefix}-{secrets.token_hex(4)}",
            groups=list(groups),
            device_key_pem=None,
            actor="test",
        )
        return sessions.start(session, approver_id=approver.id, minutes=30)
