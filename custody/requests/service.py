"""Client-initiated changes to a request after intake."""

from __future__ import annotations

from sqlalchemy.orm import Session

from custody.ledger import service as ledger
from custody.requests import lifecycle, repository
from custody.requests.states import RequestStatus
from custody.store.models import Request


def cancel(session: Session, *, client_id: str, request_id: str) -> tuple[Request, str]:
    request, wallet_name = repository.for_client(session, client_id, request_id)
    # The ledger head before the row, as every writer takes them (else two can deadlock).
    ledger.lock(session)
    request = repository.locked(session, request.id, for_update=True)
    lifecycle.move(
        session,
        request,
        RequestStatus.CANCELLED,
        actor=f"client:{client_id}",
        reason="cancelled by the client",
    )
    return request, wallet_name


def cancel_after_key_rotation(session: Session, *, client_id: str, actor: str) -> list[str]:
    """Cancel what the client's old key asked for and nobody signed yet.

    Their evidence is a token signed by the old key, which the signer no longer accepts (the
    client's key is sealed configuration): rather than fail later, at signing, after people
    approved them, they end now with a reason the client can act on.
    """
    ledger.lock(session)
    cancelled = []
    for request in repository.waiting_for_client(session, client_id):
        lifecycle.move(
            session,
            request,
            RequestStatus.CANCELLED,
            actor=actor,
            reason="the client's key was rotated: submit it again, signed with the new key",
        )
        cancelled.append(request.id)
    return cancelled
