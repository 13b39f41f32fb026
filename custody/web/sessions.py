"""Browser sessions: a random cookie whose SHA-256 alone is stored, a CSRF token per session.

A session ends at its expiry, at logout (the row is deleted), or at once when its approver is
disabled: every lookup re-reads the approver.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from custody.approvals.approvers import groups_of, hash_token, may_make
from custody.store.base import utcnow
from custody.store.models import Approver, WebSession
from custody.web.errors import CsrfRefused

COOKIE_NAME = "custody_session"


@dataclass(frozen=True)
class SignedIn:
    approver_id: str
    name: str
    groups: tuple[str, ...]
    csrf_token: str
    maker: bool = False  # may start withdrawals (a group of theirs was granted `maker`)


def start(session: Session, *, approver_id: str, minutes: int) -> str:
    """A new session for the approver; returns the cookie value (never stored)."""
    now = utcnow()
    session.execute(
        delete(WebSession).where(
            WebSession.approver_id == approver_id, WebSession.expires_at <= now
        )
    )
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=hash_token(token),
            approver_id=approver_id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + timedelta(minutes=minutes),
        )
    )
    return token


def lookup(session: Session, token: str | None) -> SignedIn | None:
    if not token or len(token) > 200:
        return None
    row = session.get(WebSession, hash_token(token))
    if row is None or row.expires_at <= utcnow():
        return None
    approver = session.get(Approver, row.approver_id)
    if approver is None or approver.disabled_at is not None:
        return None
    return SignedIn(
        approver.id,
        approver.name,
        groups_of(session, approver.id),
        row.csrf_token,
        maker=may_make(session, approver.id),
    )


def end(session: Session, token: str | None) -> None:
    if token and len(token) <= 200:
        session.execute(delete(WebSession).where(WebSession.token_hash == hash_token(token)))


def require_csrf(user: SignedIn, presented: str | None) -> None:
    """Constant-time comparison of the form field or header with the session's token."""
    if not presented or not hmac.compare_digest(presented.encode(), user.csrf_token.encode()):
        raise CsrfRefused("this form is stale or was not sent by the app; reload and try again")
