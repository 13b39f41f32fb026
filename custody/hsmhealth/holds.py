"""Login holds: after the token refuses a PIN once, no process logs in again on its own.

A real HSM locks the user PIN (or the whole partition) after a few failed logins, and a service
that retries with backoff would get there within minutes. The first refusal is recorded here, in
the database every process of the installation shares; every later login attempt is refused
before it reaches the HSM, until an operator fixes the PIN and runs `custody hsm rearm`, which
logs in once and lifts the hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from custody.hsmhealth import repository
from custody.store.base import utcnow
from custody.store.models import HsmLoginHold


@dataclass(frozen=True)
class Hold:
    token_label: str
    reason: str
    held_by: str
    held_at: datetime

    @property
    def since(self) -> str:
        return self.held_at.strftime("%Y-%m-%dT%H:%M:%SZ")


def hold_on(session: Session, token_label: str) -> Hold | None:
    row = session.get(HsmLoginHold, token_label)
    if row is None:
        return None
    return Hold(row.token_label, row.reason, row.held_by, row.held_at)


def all_holds(session: Session) -> list[Hold]:
    rows = repository.all_holds(session)
    return [Hold(r.token_label, r.reason, r.held_by, r.held_at) for r in rows]


def place(session: Session, token_label: str, *, reason: str, held_by: str) -> Hold:
    """Hold logins to `token_label`; an existing hold stays as it was (the first refusal)."""
    existing = hold_on(session, token_label)
    if existing is not None:
        return existing
    row = HsmLoginHold(token_label=token_label, reason=reason, held_by=held_by, held_at=utcnow())
    session.add(row)
    session.flush()
    return Hold(row.token_label, row.reason, row.held_by, row.held_at)


def lift(session: Session, token_label: str) -> bool:
    return repository.delete_hold(session, token_label)
