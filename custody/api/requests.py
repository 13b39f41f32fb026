"""`/v1/requests`: create, read, list and cancel a client's own requests."""

from __future__ import annotations

import base64
import binascii
import json
import time
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from custody import callid
from custody.api.deps import BodyDep, ClientDep, CreatingClientDep, RuntimeDep, approval_fields
from custody.api.openapi import json_body, required_header
from custody.approvals.device import record_device_approval, verify_device_approval
from custody.approvals.schemas import ApprovalAnswer
from custody.approvals.views import approvals_view
from custody.errors import ValidationFailed
from custody.freezes.views import Waiting, waiting_for
from custody.http.problems import problem_responses
from custody.http.ratelimit import RateLimitsDep
from custody.intake.pipeline import MAX_IDEMPOTENCY_KEY, submit
from custody.requests import repository
from custody.requests import service as request_service
from custody.requests.states import TRAITS, RequestStatus
from custody.views.requests import request_model
from custody.views.schemas import RequestPage, RequestView

router = APIRouter(
    prefix="/v1/requests",
    tags=["requests"],
    responses=problem_responses(400, 401, 403, 422, 429, 500, 503),
)
MAX_PAGE = 200
MAX_WAIT_SECONDS = 30


@router.post(
    "",
    status_code=201,
    summary="Create a request: a withdrawal, contract call, trade or message to sign",
    responses=problem_responses(409, 413),
    openapi_extra=json_body(
        "RequestBody",
        "One of the request types, by `type`. Amounts are decimal strings of base units; "
        "numbers with a fraction or exponent and duplicate keys are refused. The body's exact "
        "bytes are what the token's `bodyHash` names.",
    )
    | required_header(
        "Idempotency-Key",
        "Also the token's `idempotencyKey` claim. The same key and body answer as the first "
        "time did; the same key with another body is a 409.",
        MAX_IDEMPOTENCY_KEY,
    ),
)
def create_request(
    response: Response,
    rt: RuntimeDep,
    client: CreatingClientDep,
    body: BodyDep,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", include_in_schema=False)
    ] = None,
) -> RequestView:
    # Intake owns its transactions: it decodes in a read transaction, then decides and stores in
    # a write transaction (and looks again when a concurrent call won its key or nonce).
    submission = submit(
        rt.db,
        client=client,
        idempotency_key=idempotency_key,
        body=body,
        max_fee_wei=rt.settings.max_tx_fee_wei,
        node_timeout=rt.settings.node_timeout_seconds,
        http_request_id=callid.current(),
    )
    view = RequestView.model_validate(submission.view)
    if submission.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    elif view.status == RequestStatus.APPROVED:
        rt.notify_signer()
    return view


@router.get("/{request_id}", summary="Read one of your requests", responses=problem_responses(404))
async def get_request(
    request_id: str,
    rt: RuntimeDep,
    client: ClientDep,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_WAIT_SECONDS,
            description="Long poll: answer as soon as the status is no longer the one it had "
            "when the call arrived (passing over `signing`, which lasts milliseconds), or after "
            "this many seconds with the request as it is. A request nothing will move any more "
            "(a final status, or signed where nothing is broadcast) is answered at once.",
        ),
    ] = 0,
    seen: Annotated[
        RequestStatus | None,
        Query(
            description="With `wait`: the status the caller already knows (from the create's "
            "answer or an earlier read). The poll answers at once when the request has another "
            "one (but `signing`), and otherwise waits for the next change, instead of taking "
            "the status at its arrival as the one to wait past: a client need not read the "
            "request first, and no change between its reads goes unseen.",
        ),
    ] = None,
) -> RequestView:
    def view_in(session: Session, settling: bool) -> tuple[RequestView, bool]:
        request, wallet_name = repository.for_client(session, client.id, request_id)
        waiting = waiting_for(session, request)
        newer = repository.replacement_of(session, request.id)
        view = request_model(
            request,
            wallet_name,
            approvals_view(session, request),
            waiting,
            replaced_by=newer.id if newer is not None else None,
        )
        # Only a long poll asks whether anything will move the request still.
        return view, settling and repository.settled(session, request)

    def read(settling: bool = True) -> tuple[RequestView, bool]:
        with rt.db.read() as session:
            return view_in(session, settling)

    def news(known: str) -> tuple[RequestView, bool] | None:
        """The view once the status is no longer `known`; None while it is. One transaction
        and one worker-thread hand-off: a woken poll reads the status alone, and the view
        only when there is news (an unknown request's status is None: its 404)."""
        with rt.db.read() as session:
            if repository.status_for_client(session, client.id, request_id) == known:
                return None
            return view_in(session, True)

    if not wait:
        return (await run_in_threadpool(read, False))[0]
    # The ticket comes before each read: a change committed between the two sets it.
    ticket = rt.changes.ticket(request_id)
    try:
        # The caller may name the status the request still has (a create's answer): the poll
        # then waits on the status alone, and builds the view once, when there is news.
        latest: RequestView | None = None
        settled = False
        if seen is not None and _may_move(seen):
            status: RequestStatus = seen
            found = await run_in_threadpool(news, seen)
        else:
            found = await run_in_threadpool(read)
        if found is not None:
            latest, settled = found
            status = latest.status
        before = status if seen is None else seen
        deadline = time.monotonic() + wait
        recheck = rt.settings.long_poll_recheck_seconds
        while not settled and not _moved_on(before, status):
            if (left := deadline - time.monotonic()) <= 0:
                break
            await ticket.wait(min(left, recheck))
            ticket = rt.changes.ticket(request_id)
            # The recheck, or a change that could not say which requests it moved, wakes every
            # poll: one whose own request kept its status reads only that, not the whole view
            found = await run_in_threadpool(news, status)
            if found is None:
                latest = None  # unmoved, but its approvals may have: read afresh to answer
            else:
                latest, settled = found
                status = latest.status
        return latest if latest is not None else (await run_in_threadpool(read, False))[0]
    finally:
        ticket.close()  # answered, refused or the caller left: nobody waits on it


def _may_move(status: RequestStatus) -> bool:
    """Whether a request in `status` may move on by itself (for a long poll to wait for)."""
    return not TRAITS[status].terminal and status is not RequestStatus.SIGNED


def _moved_on(before: RequestStatus, status: RequestStatus) -> bool:
    """Whether a long poll has news: another status, and not the moment the HSM signs in."""
    return status not in (before, RequestStatus.SIGNING)


@router.get("", summary="List your requests, newest first")
def list_requests(
    rt: RuntimeDep,
    client: ClientDep,
    status: Annotated[RequestStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> RequestPage:
    after = _decode_cursor(cursor) if cursor else None
    with rt.db.read() as session:
        rows = repository.page_for_client(
            session, client.id, status=status, after=after, limit=limit + 1
        )
        waiting = Waiting(session)
        items = [
            request_model(r, name, approvals_view(session, r), waiting.of(r))
            for r, name in rows[:limit]
        ]
        next_cursor = (
            _encode_cursor(rows[limit - 1][0].created_at, rows[limit - 1][0].id)
            if len(rows) > limit
            else None
        )
    return RequestPage(items=items, next_cursor=next_cursor)


@router.post(
    "/{request_id}/cancel",
    summary="Cancel a request that is not yet being signed",
    responses=problem_responses(404, 409),
)
def cancel_request(request_id: str, rt: RuntimeDep, client: ClientDep) -> RequestView:
    """The answer shows `approvals` as at intake (`decisions` empty), as it always has."""
    with rt.db.write() as session:
        request, wallet_name = request_service.cancel(
            session, client_id=client.id, request_id=request_id
        )
        return request_model(request, wallet_name)


@router.post(
    "/{request_id}/approvals",
    summary="An approver's device-key approval or rejection",
    responses=problem_responses(404, 409, 413),
    openapi_extra=json_body("ApprovalBody", "The decision and its device-key signature."),
)
def add_approval(
    request_id: str, rt: RuntimeDep, limits: RateLimitsDep, body: BodyDep
) -> ApprovalAnswer:
    """Authenticated by the Ed25519 signature over the approval statement (see DESIGN.md),
    not by a client token: approvers are people with devices, not trading systems. A verified
    approval spends its approver's rate limit (the one the web app charges too)."""
    data = approval_fields(body)
    with rt.db.read() as session:
        verified = verify_device_approval(
            session,
            request_id=request_id,
            approver_name=data.get("approver"),
            decision=data.get("decision"),
            signature=data.get("signature"),
        )
    limits.admit_approver(verified.approver_id)
    with rt.db.write() as session:
        outcome = record_device_approval(session, verified)
    outcome.raise_refusal()  # a request past its deadline expired (committed) instead
    answer = ApprovalAnswer(
        request=outcome.request_id,
        status=RequestStatus(outcome.status),
        quorum=outcome.quorum.view(),
    )
    if answer.status == RequestStatus.APPROVED:
        rt.notify_signer()
    return answer


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
