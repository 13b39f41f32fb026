"""The one writer of a request's status.

Every status change goes through `create` or `move`: they check the transition table
(`custody.requests.states`), set the status with what comes with it (the signing lease, the
signing time, the reason shown to the client) and append one ledger entry of one shape in the
caller's transaction (invariant 3):

    kind  "request.created" for the first status, "request.<to>" for every later one
    data  {"request": id, "from": previous status or null, "to": status, "reason": text, ...}

Webhooks, views and the approver app read statuses from these entries and rows; nothing else
assigns `Request.status` (custody.requests.guard refuses it at run time, and a test walks the
source).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from custody import wakeup
from custody.errors import Conflict
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.requests.guard import lifecycle_writes
from custody.requests.states import INITIAL, TRAITS, RequestStatus, can_move
from custody.store.base import utcnow
from custody.store.models import Request

_DATA_KEYS = frozenset({"request", "from", "to", "reason"})


class IllegalTransition(Conflict):
    title = "Request cannot change that way"
    slug = "illegal-transition"


@dataclass(frozen=True)
class Lease:
    """Who holds a request in `signing`, and until when (a crashed worker's lease runs out)."""

    worker: str
    until: datetime


def entry_kind(to: RequestStatus, *, created: bool) -> EventKind:
    return EventKind.REQUEST_CREATED if created else EventKind(f"request.{to.value}")


def create(
    session: Session,
    request: Request,
    to: RequestStatus,
    *,
    actor: str,
    reason: str,
    **data: Any,
) -> None:
    """Store a new request in its first status (the policy's decision) with its ledger entry."""
    if to not in INITIAL:
        raise IllegalTransition(f"a new request cannot start as {to.value}")
    with lifecycle_writes():
        request.status = to.value
    session.add(request)
    session.flush()
    _record(session, request, None, to, actor=actor, reason=reason, data=data)


def move(
    session: Session,
    request: Request,
    to: RequestStatus,
    *,
    actor: str,
    reason: str,
    lease: Lease | None = None,
    **data: Any,
) -> None:
    """Change a stored request's status, or refuse with 409 when the table does not allow it.

    The caller holds the row (`requests.repository.locked(..., for_update=True)`) or the ledger
    head lock, so the status it read is still the status now.
    """
    current = RequestStatus(request.status)
    if not can_move(current, to):
        raise IllegalTransition(
            f"request {request.id} is {current.value}: it cannot become {to.value}"
        )
    if (to is RequestStatus.SIGNING) != (lease is not None):
        raise ValueError("a lease comes with signing, and only with signing")
    now = utcnow()
    with lifecycle_writes():
        request.status = to.value
    request.updated_at = now
    request.lease_until = lease.until if lease else None
    if lease is not None:
        request.claimed_by = lease.worker
        request.signing_attempts += 1
    if to is RequestStatus.SIGNED:
        request.signed_at = now
    if TRAITS[to].keeps_reason:
        request.failure_reason = reason
    _record(session, request, current, to, actor=actor, reason=reason, data=data)


def _record(
    session: Session,
    request: Request,
    current: RequestStatus | None,
    to: RequestStatus,
    *,
    actor: str,
    reason: str,
    data: dict[str, Any],
) -> None:
    clash = _DATA_KEYS & data.keys()
    if clash:
        raise ValueError(f"transition data may not redefine {sorted(clash)}")
    if to is not RequestStatus.SIGNING:
        # This request's long polls hear of it once this commits. They pass over `signing` (it
        # lasts milliseconds): a claim would only make them read again while the HSM signs.
        session.info.setdefault(wakeup.STATUS_CHANGED, set()).add(request.id)
    ledger.append(
        session,
        entry_kind(to, created=current is None),
        actor,
        {
            "request": request.id,
            "from": None if current is None else current.value,
            "to": to.value,
            "reason": reason,
            **data,
        },
    )


def status_after(kind: str, data: dict[str, Any]) -> str | None:
    """The status a ledger entry moved its request to, or None when it moved none."""
    if not kind.startswith("request.") or "to" not in data or "from" not in data:
        return None
    to = data["to"]
    return to if isinstance(to, str) and to in RequestStatus._value2member_map_ else None
