"""What the sync and async clients share: building signed calls, deciding retries, reading
answers, judging a long poll. No I/O here, so both clients behave the same by construction."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.client.errors import CustodyAPIError, api_error
from custody.client.models import FINAL_STATUSES, SIGNED_PROGRESSION, Request
from custody.client.tokens import sign_call

REQUESTS = "/v1/requests"
# The longest long poll the server grants; `wait` loops over polls of at most this.
MAX_POLL_SECONDS = 30.0
# On top of a long poll's wait: the HTTP read must outlast the server's answer.
POLL_READ_MARGIN = 10.0


@dataclass(frozen=True)
class Call:
    method: str
    uri: str  # path and query, exactly as signed and sent
    body: bytes = b""
    idempotency_key: str | None = None
    timeout: float | None = None  # None: the HTTP client's own

    @property
    def replayable(self) -> bool:
        """Whether sending it twice does what sending it once does: reads, and creates that
        carry an Idempotency-Key (the server answers the second with the first's request)."""
        return self.method == "GET" or self.idempotency_key is not None


@dataclass(frozen=True)
class Credentials:
    base_url: str
    client_id: str
    key: Ed25519PrivateKey

    def build(self, http: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
        """The HTTP request for one attempt: every attempt gets a fresh token (a nonce is
        accepted once), a retried create the same Idempotency-Key."""
        token = sign_call(
            self.client_id,
            self.key,
            call.method,
            call.uri,
            call.body,
            idempotency_key=call.idempotency_key,
        )
        headers = {"Authorization": f"Bearer {token}"}
        if call.body:
            headers["Content-Type"] = "application/json"
        if call.idempotency_key is not None:
            headers["Idempotency-Key"] = call.idempotency_key
        timeout = httpx.USE_CLIENT_DEFAULT if call.timeout is None else call.timeout
        return http.build_request(
            call.method,
            self.base_url.rstrip("/") + call.uri,
            content=call.body,
            headers=headers,
            timeout=timeout,
        )


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. A create is retried with the same Idempotency-Key, so
    a retry can never make a second request."""

    attempts: int = 4
    first_backoff: float = 0.5
    max_delay: float = 30.0  # a longer Retry-After is not waited out: the error is raised

    def backoff(self, attempt: int) -> float:
        return float(min(self.first_backoff * 2 ** (attempt - 1), self.max_delay))

    def after_failure(self, call: Call, exc: httpx.TransportError, attempt: int) -> float | None:
        """Seconds to wait before the next attempt after no answer came; None: give up."""
        if attempt >= self.attempts:
            return None
        # A call that never connected never reached the server: safe to send again whatever
        # it is. Any other one may have been acted on.
        never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
        return self.backoff(attempt) if call.replayable or never_sent else None

    def after_answer(self, call: Call, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before the next attempt after this answer; None: it is the outcome."""
        status = response.status_code
        if status not in (429, 503) or attempt >= self.attempts:
            return None
        # A 429 is refused before anything is written; a 503 may come after the write.
        if status == 503 and not call.replayable:
            return None
        asked = retry_after(response)
        if asked is None:
            return self.backoff(attempt)
        return asked if asked <= self.max_delay else None


def retry_after(response: httpx.Response, now: datetime | None = None) -> float | None:
    """`Retry-After` in seconds (delta-seconds or an HTTP date), None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def answer(response: httpx.Response) -> dict[str, Any]:
    """The JSON of a success; an error answer raised as its CustodyAPIError."""
    if response.is_success:
        data = response.json()
        if not isinstance(data, dict):
            raise CustodyAPIError(response.status_code, _not_json(response, "not a JSON object"))
        return data
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        problem = _not_json(response, response.text[:200] or response.reason_phrase)
    raise api_error(
        response.status_code,
        problem,
        retry_after(response),
        request_id=response.headers.get("X-Request-Id"),
    )


def request_of(response: httpx.Response) -> Request:
    replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
    return Request.from_json(answer(response), replayed=replayed)


def _not_json(response: httpx.Response, detail: str) -> dict[str, Any]:
    # A proxy or load balancer in front of custody answers in its own format.
    return {
        "type": "about:blank",
        "title": response.reason_phrase,
        "status": response.status_code,
        "detail": detail,
    }


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The exact bytes sent and signed. Floats are refused here: amounts are decimal strings of
    base units, and a float has already lost the digits the server would refuse it for."""
    _refuse_floats(body, "body")
    return json.dumps(body, separators=(",", ":")).encode()


def _refuse_floats(value: Any, where: str) -> None:
    if isinstance(value, float):
        raise TypeError(f"{where} is a float; amounts are decimal strings of base units")
    if isinstance(value, Mapping):
        for name, item in value.items():
            _refuse_floats(item, f"{where}.{name}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _refuse_floats(item, f"{where}[{index}]")


def request_uri(request_id: str, *, wait: float = 0, seen: str | None = None) -> str:
    uri = f"{REQUESTS}/{quote(request_id, safe='')}"
    if not wait:
        return uri
    query = f"?wait={wait:.1f}"
    return uri + query if seen is None else f"{uri}{query}&{urlencode({'seen': seen})}"


def list_uri(status: str | None, limit: int | None, cursor: str | None) -> str:
    query = {
        name: str(value)
        for name, value in (("status", status), ("limit", limit), ("cursor", cursor))
        if value is not None
    }
    return f"{REQUESTS}?{urlencode(query)}" if query else REQUESTS


def cancel_uri(request_id: str) -> str:
    return f"{REQUESTS}/{quote(request_id, safe='')}/cancel"


def poll_seconds(left: float) -> float:
    return min(max(left, 0.1), MAX_POLL_SECONDS)


def poll_call(request_id: str, seconds: float, seen: str | None = None) -> Call:
    """A long poll; `seen`: the status the caller knows, so a change it has not seen yet is
    answered at once, however it happened before the poll arrived."""
    return Call(
        "GET",
        request_uri(request_id, wait=seconds, seen=seen),
        timeout=seconds + POLL_READ_MARGIN,
    )


@dataclass(frozen=True)
class Goal:
    """When `wait` is over: a final status, a status of `until`, or a later one on the way from
    signed to confirmed (a poll may answer after two changes and show only the second)."""

    until: frozenset[str]

    @classmethod
    def of(cls, until: Iterable[str] | str | None) -> Goal:
        if isinstance(until, str):
            until = (until,)
        return cls(frozenset(until or ()))

    def reached(self, request: Request) -> bool:
        if request.status in FINAL_STATUSES or request.status in self.until:
            return True
        wanted = [SIGNED_PROGRESSION.index(s) for s in self.until if s in SIGNED_PROGRESSION]
        return (
            bool(wanted)
            and request.status in SIGNED_PROGRESSION
            and SIGNED_PROGRESSION.index(request.status) >= min(wanted)
        )


def settled(before: Request, after: Request, asked: float, took: float) -> bool:
    """Whether a long poll said that nothing will move the request any more.

    The server answers a poll early only when the status changed or when nothing will change it
    (a final status, or signed where nothing is broadcast); early with the same status means
    the latter. Polls too short to tell are never read this way.
    """
    return asked >= 1.0 and after.status == before.status and took < asked / 2
