"""Client-initiated changes to a request after intake."""

from __future__ import annotations

from sqlalchemy.orm import Session

from custody.errors import Conflict
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.requests import repository
from custody.requests.states import RequestStatus, can_move
from custody.store.base import utcnow
from custody.store.models import Request


def cancel(session: Session, *, client_id: str, request_id: str) -> tuple[Request, str]:
    request, wallet_name = repository.for_client(session, client_id, request_id)
    request = repository.locked(session, request.id, for_update=True)
    current = RequestStatus(request.status)
    if not can_move(current, RequestStatus.CANCELLED):
        raise Conflict(f"request {request.id} is {current.value} and can no longer be cancelled")
    request.status = RequestStatus.CANCELLED.value
    request.updated_at = utcnow()
    ledger.append(
        session,
        EventKind.REQUEST_CANCELLED,
        f"client:{client_id}",
        {"request": request.id, "previous_status": current.value},
    )
    return request, wallet_name
