"""POSTing queued deliveries: signed, retried with exponential backoff, in order per target.

A delivery is claimed in a short transaction (attempt counted, `next_attempt_at` pushed past the
HTTP timeout as a lease), POSTed outside any transaction, and its outcome recorded in another.
A process that dies mid-POST leaves the lease to run out and the delivery is tried again, so
delivery is at least once; receivers de-duplicate by the `Custody-Delivery-Id` header.
Per target only the oldest pending delivery is ever attempted, so a receiver sees a request's
statuses in ledger order. A delivery that gave up (`failed`) stops blocking the ones after it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from custody import __version__, tracing
from custody.store.base import utcnow
from custody.store.database import Database
from custody.webhooks import repository
from custody.webhooks.signing import BodySigner

log = logging.getLogger("custody.webhooks")

FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 300.0
LEASE_MARGIN_SECONDS = 30.0
BATCH = 50
_ERROR_LIMIT = 500


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int = 12
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class _Claimed:
    id: int
    url: str
    body: bytes
    event: str
    attempts: int
    target: str = ""


def backoff(attempts: int) -> timedelta:
    """Wait after the `attempts`-th failure: 1 s, 2 s, 4 s, ... at most 5 minutes."""
    seconds = FIRST_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, MAX_BACKOFF_SECONDS))


def deliver_due(
    db: Database,
    signer: BodySigner,
    policy: DeliveryPolicy,
    *,
    http: httpx.Client | None = None,
    now: datetime | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Attempt what is due until nothing is; returns how many were delivered.

    Each round takes the due head of every target; a success makes the target's next delivery
    the head for the following round, a failure pushes the head into the future, so this ends.
    """
    delivered = 0
    own = http is None
    client = http or httpx.Client(follow_redirects=False)
    try:
        while claimed := _claim(db, policy, now or utcnow()):
            for one in claimed:
                if stop is not None and stop.is_set():
                    return delivered
                with tracing.span("webhook.deliver", _traced(one)) as span:
                    error = _post(client, signer, one, policy.timeout_seconds)
                    span.set({"custody.delivered": error is None})
                    if error is not None:
                        span.fail(error)
                _record(db, one, error, policy, now)
                delivered += error is None
    finally:
        if own:
            client.close()
    return delivered


def _claim(db: Database, policy: DeliveryPolicy, now: datetime) -> list[_Claimed]:
    lease = timedelta(seconds=policy.timeout_seconds + LEASE_MARGIN_SECONDS)
    with db.write() as session:
        heads = repository.due_heads(session, now, BATCH, skip_locked=not db.sqlite)
        claimed = []
        for row in heads:
            row.attempts += 1
            row.next_attempt_at = now + lease
            claimed.append(
                _Claimed(row.id, row.url, row.body, _event(row.body), row.attempts, row.target)
            )
        return claimed


def _post(
    client: httpx.Client, signer: BodySigner, claimed: _Claimed, timeout: float
) -> str | None:
    """None when the receiver answered 2xx, else what went wrong (one line)."""
    try:
        headers = signer.headers(claimed.body, int(time.time()))
    except Exception as exc:  # an HSM problem: count it, retry later
        log.warning("webhook %d not signed: %s", claimed.id, exc)
        return f"not signed: {type(exc).__name__}"
    headers |= {
        "Content-Type": "application/json",
        "User-Agent": f"custody-webhooks/{__version__}",
        "Custody-Delivery-Id": str(claimed.id),
        "Custody-Event": claimed.event,
    }
    # With tracing on, the POST's own span puts its `traceparent` into the headers: the
    # receiver's handling joins this delivery's trace.
    with tracing.client_span("POST", headers, {"http.request.method": "POST"}) as span:
        try:
            answer = client.post(
                claimed.url, content=claimed.body, headers=headers, timeout=timeout
            )
        except httpx.TimeoutException:
            return f"timeout after {timeout:g} s"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}".splitlines()[0][:_ERROR_LIMIT]
        span.set({"http.response.status_code": answer.status_code})
    if 200 <= answer.status_code < 300:
        return None
    return f"HTTP {answer.status_code}"


def _record(
    db: Database,
    claimed: _Claimed,
    error: str | None,
    policy: DeliveryPolicy,
    now: datetime | None,
) -> None:
    moment = now or utcnow()
    with db.write() as session:
        row = repository.delivery(session, claimed.id, for_update=True)
        if row.status != "pending":  # e.g. an operator changed it meanwhile
            return
        if error is None:
            row.status = "delivered"
            row.delivered_at = utcnow()
            row.last_error = None
            return
        row.last_error = error
        if row.attempts >= policy.max_attempts:
            row.status = "failed"
            log.warning("webhook %d to %s failed for good: %s", row.id, row.target, error)
        else:
            row.next_attempt_at = moment + backoff(row.attempts)


def _event(body: bytes) -> str:
    event = _field(body, "event")
    return event if isinstance(event, str) else ""


def _field(body: bytes, name: str) -> object:
    import json

    try:
        return json.loads(body).get(name)
    except (ValueError, AttributeError):
        return None


def _traced(claimed: _Claimed) -> tracing.Attributes:
    """The delivery, its target (`client:ID`, `group:NAME`, never the URL, which may hold a
    receiver's secret) and the request it is about."""
    if not tracing.enabled():
        return {}  # the body is parsed again only for a span
    request = _field(claimed.body, "request")
    request = request if isinstance(request, str) else _field(claimed.body, "id")
    call = _field(claimed.body, "http_request_id")
    return {
        "custody.delivery_id": claimed.id,
        "custody.event": claimed.event,
        "custody.webhook_target": claimed.target,
        "custody.attempt": claimed.attempts,
        "custody.request_id": request if isinstance(request, str) else None,
        "custody.http_request_id": call if isinstance(call, str) else None,
    }
