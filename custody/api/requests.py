"""`/v1/requests`: create, read, list and cancel a client's own requests."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from custody.api.deps import BodyDep, ClientDep, CreatingClientDep, RuntimeDep
from custody.approvals.device import record_device_approval, verify_device_approval
from custody.approvals.service import approvals_view
from custody.errors import Conflict, ValidationFailed
from custody.intake.jsonbody import parse_object
from custody.intake.pipeline import submit
from custody.requests import repository
from custody.requests import service as request_service
from custody.requests.states import RequestStatus
from custody.requests.views import request_view
from custody.store.models import Request

router = APIRouter(prefix="/v1/requests", tags=["requests"])
MAX_PAGE = 200


@router.post("", status_code=201, summary="Create a withdrawal request")
def create_request(
    response: Response,
    rt: RuntimeDep,
    client: CreatingClientDep,
    body: BodyDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> dict[str, Any]:
    for attempt in range(2):
        try:
            with rt.db.write() as session:
                submission = submit(
                    session,
                    client=client,
                    idempotency_key=idempotency_key,
                    body=body,
                    max_fee_wei=rt.settings.max_tx_fee_wei,
                )
            break
        except IntegrityError:
            # A concurrent call won a unique constraint (same key, or same nonce): look again,
            # now that its row is committed; the second time the normal checks explain it.
            if attempt == 1:
                raise Conflict("a concurrent request conflicts with this one; retry") from None
    if submission.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    elif submission.view["status"] == RequestStatus.APPROVED:
        rt.notify_signer()
    return submission.view


@router.get("/{request_id}", summary="Read one of your requests")
def get_request(request_id: str, rt: RuntimeDep, client: ClientDep) -> dict[str, Any]:
    with rt.db.read() as session:
        request, wallet_name = repository.for_client(session, client.id, request_id)
        return _full_view(session, request, wallet_name)


@router.get("", summary="List your requests, newest first")
def list_requests(
    rt: RuntimeDep,
    client: ClientDep,
    status: Annotated[RequestStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    after = _decode_cursor(cursor) if cursor else None
    with rt.db.read() as session:
        rows = repository.page_for_client(
            session, client.id, status=status, after=after, limit=limit + 1
        )
        items = [_full_view(session, r, name) for r, name in rows[:limit]]
        next_cursor = (
            _encode_cursor(rows[limit - 1][0].created_at, rows[limit - 1][0].id)
            if len(rows) > limit
            else None
        )
    return {"items": items, "next_cursor": next_cursor}


@router.post("/{request_id}/cancel", summary="Cancel a request that is not yet being signed")
def cancel_request(request_id: str, rt: RuntimeDep, client: ClientDep) -> dict[str, Any]:
    with rt.db.write() as session:
        request, wallet_name = request_service.cancel(
            session, client_id=client.id, request_id=request_id
        )
        return request_view(request, wallet_name)


@router.post("/{request_id}/approvals", summary="An approver's device-key approval or rejection")
def add_approval(request_id: str, rt: RuntimeDep, body: BodyDep) -> dict[str, Any]:
    """Authenticated by the Ed25519 signature over the approval statement (see DESIGN.md),
    not by a client token: approvers are people with devices, not trading systems."""
    data = parse_object(body)
    unknown = set(data) - {"approver", "decision", "signature"}
    if unknown:
        raise ValidationFailed(f"unknown fields: {', '.join(sorted(unknown))}")
    with rt.db.read() as session:
        verified = verify_device_approval(
            session,
            request_id=request_id,
            approver_name=data.get("approver"),
            decision=data.get("decision"),
            signature=data.get("signature"),
        )
    with rt.db.write() as session:
        outcome = record_device_approval(session, verified)
    outcome.raise_refusal()  # a request past its deadline expired (committed) instead
    answer = {
        "request": outcome.request_id,
        "status": outcome.status,
        "quorum": outcome.quorum.as_dict(),
    }
    if answer["status"] == RequestStatus.APPROVED:
        rt.notify_signer()
    return answer


def _full_view(session: Session, request: Request, wallet_name: str) -> dict[str, Any]:
    view = request_view(request, wallet_name)
    view["approvals"] = approvals_view(session, request)
    return view


def _encode_cursor(created_at: datetime, request_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), request_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, request_id = json.loads(raw)
        moment = datetime.fromisoformat(created)
    except (binascii.Error, ValueError, TypeError):
        raise ValidationFailed("cursor is not one this server issued") from None
    if moment.tzinfo is None or not isinstance(request_id, str):
        raise ValidationFailed("cursor is not one this server issued")
    return moment, request_id
