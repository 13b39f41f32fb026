"""Which answers the SDK retries, and for how long: the rules that keep a retry from doing a
call twice (the end-to-end retries run against the server in test_client_requests.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from custody.client import Request, RetryPolicy
from custody.client.calls import Call, Goal, retry_after

CREATE = Call("POST", "/v1/requests", b"{}", idempotency_key="k")
CANCEL = Call("POST", "/v1/requests/req_1/cancel")
READ = Call("GET", "/v1/requests/req_1")
POLICY = RetryPolicy(attempts=3, first_backoff=0.5, max_delay=30)


def _answer(status: int, retry: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry} if retry is not None else {}
    return httpx.Response(status, headers=headers)


def _request(status: str) -> Request:
    view = {"id": "req_1", "status": status, "type": "withdrawal", "wallet": "w", "asset": "ETH"}
    return Request.from_json({**view, "amount": "1", "created_at": "2026-01-01T00:00:00Z"})


def test_a_cancel_that_may_have_been_done_is_not_sent_again() -> None:
    lost = httpx.ReadError("reset")
    assert POLICY.after_failure(CREATE, lost, 1) == 0.5
    assert POLICY.after_failure(READ, lost, 2) == 1.0
    assert POLICY.after_failure(CANCEL, lost, 1) is None
    assert POLICY.after_failure(CANCEL, httpx.ConnectError("refused"), 1) == 0.5
    assert POLICY.after_answer(CANCEL, _answer(503, "1"), 1) is None
    assert POLICY.after_answer(CANCEL, _answer(429, "2"), 1) == 2.0  # refused before any write


def test_retry_after_is_honoured_within_the_bound() -> None:
    assert POLICY.after_answer(CREATE, _answer(503, "3"), 1) == 3.0
    assert POLICY.after_answer(CREATE, _answer(503), 2) == 1.0  # no header: the backoff
    assert POLICY.after_answer(CREATE, _answer(429, "31"), 1) is None  # too long: raised
    assert POLICY.after_answer(CREATE, _answer(503, "1"), 3) is None  # attempts spent
    assert POLICY.after_answer(CREATE, _answer(500), 1) is None
    now = datetime(2026, 12, 1, 17, 0, 0, tzinfo=UTC)
    dated = _answer(503, "Tue, 01 Dec 2026 17:00:07 GMT")
    assert retry_after(dated, now) == 7.0
    assert retry_after(_answer(503, "soon")) is None


def test_waiting_for_signed_ends_on_any_later_step_or_a_final_status() -> None:
    signed = Goal.of("signed")
    assert [
        s for s in ("approved", "signing", "signed", "broadcast") if signed.reached(_request(s))
    ] == [
        "signed",
        "broadcast",
    ]
    assert signed.reached(_request("rejected"))
    settled_only = Goal.of(None)
    assert not settled_only.reached(_request("signed"))
    assert settled_only.reached(_request("confirmed"))
    assert Goal.of({"pending_approval"}).reached(_request("pending_approval"))
