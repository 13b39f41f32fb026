"""`custody.client.Client` against a real server over HTTP: create, wait, retries, errors."""

from __future__ import annotations

import itertools
import re
import time

import httpx
import pytest
from eth_account import Account

from custody.client import (
    Client,
    Conflict,
    InvalidRequest,
    RetryPolicy,
    Unavailable,
    WaitTimedOut,
)
from tests.client.conftest import APPROVAL_ABOVE
from tests.client.faults import LosesFirstAnswer, UnavailableFirst
from tests.support.api import withdrawal
from tests.support.installation import ClientKeys, WalletInfo

QUICK = RetryPolicy(attempts=3, first_backoff=0.01)
_nonces = itertools.count()


def _small(wallet: WalletInfo, amount: str = "1000") -> dict[str, object]:
    return withdrawal(wallet.name, amount=amount, nonce=next(_nonces))


def test_a_created_withdrawal_is_waited_for_until_signed_by_the_wallet_key(
    custody: Client, wallet: WalletInfo
) -> None:
    created = custody.create(_small(wallet))
    assert created.status == "approved"
    assert created.amount == "1000"
    assert created.policy["decision"] == "allow"
    assert not created.replayed

    signed = custody.wait(created.id, timeout=30, until="signed")

    assert signed.status == "signed"
    assert signed.result is not None
    assert Account.recover_transaction(signed.result["raw_transaction"]) == wallet.address
    assert signed.json["result"] == signed.result  # the whole answer is kept
    assert custody.get(created.id) == signed


def test_waiting_on_a_created_request_polls_at_once_naming_the_status_it_was_created_with(
    live_url: str, desk: ClientKeys, wallet: WalletInfo
) -> None:
    sent: list[str] = []
    hooks = {"request": [lambda request: sent.append(f"{request.method} {request.url}")]}
    with (
        httpx.Client(event_hooks=hooks) as http,
        Client(live_url, desk.id, desk.private_key, http=http) as custody,
    ):
        created = custody.create(_small(wallet))
        signed = custody.wait(created, timeout=30, until="signed")

    assert signed.id == created.id
    assert signed.status == "signed"
    assert Account.recover_transaction(signed.result["raw_transaction"]) == wallet.address
    assert sent[0] == f"POST {live_url}/v1/requests"
    # No plain read between the create and the poll; each poll names the status last seen.
    assert sent[1].startswith(f"GET {live_url}/v1/requests/{created.id}?wait=")
    assert sent[1].endswith("&seen=approved")


def test_a_lost_answer_is_retried_with_the_same_key_and_answers_the_same_request(
    live_url: str, desk: ClientKeys, wallet: WalletInfo
) -> None:
    transport = LosesFirstAnswer()
    with (
        httpx.Client(transport=transport) as http,
        Client(live_url, desk.id, desk.private_key, http=http, retry=QUICK) as custody,
    ):
        created = custody.create(_small(wallet))

        assert created.replayed  # the server had stored the first POST
        first, retry = transport.posts
        assert first.headers["Idempotency-Key"] == retry.headers["Idempotency-Key"]
        assert first.headers["Authorization"] != retry.headers["Authorization"]  # fresh nonce
        assert [r.id for r in custody.list().items] == [created.id]


def test_the_same_key_again_answers_the_first_request_and_another_body_conflicts(
    custody: Client, wallet: WalletInfo
) -> None:
    body = _small(wallet)
    first = custody.create(body, idempotency_key="order-42")
    again = custody.create(body, idempotency_key="order-42")
    assert (again.id, again.replayed) == (first.id, True)

    with pytest.raises(Conflict) as refused:
        custody.create(_small(wallet), idempotency_key="order-42")
    assert refused.value.status == 409
    assert refused.value.type.endswith("/idempotency-conflict")
    assert "Idempotency-Key" in refused.value.detail


def test_an_outage_with_retry_after_is_waited_out_with_the_same_key(
    live_url: str, desk: ClientKeys, wallet: WalletInfo
) -> None:
    transport = UnavailableFirst(outages=1, retry_after="1")
    with (
        httpx.Client(transport=transport) as http,
        Client(live_url, desk.id, desk.private_key, http=http, retry=QUICK) as custody,
    ):
        started = time.monotonic()
        created = custody.create(_small(wallet))

        assert time.monotonic() - started >= 1.0  # Retry-After, not the 10 ms backoff
        assert created.status == "approved"
        assert not created.replayed  # the outage answered before the server saw it
        assert len({r.headers["Idempotency-Key"] for r in transport.posts}) == 1


def test_retries_are_bounded_and_the_last_problem_is_raised(
    live_url: str, desk: ClientKeys, wallet: WalletInfo
) -> None:
    transport = UnavailableFirst(outages=10, retry_after="0")
    with (
        httpx.Client(transport=transport) as http,
        Client(live_url, desk.id, desk.private_key, http=http, retry=QUICK) as custody,
        pytest.raises(Unavailable) as failed,
    ):
        custody.create(_small(wallet))
    assert len(transport.posts) == QUICK.attempts
    assert (failed.value.status, failed.value.detail) == (503, "the HSM is not reachable")
    assert failed.value.retry_after == 0


def test_a_refused_body_raises_the_problem_and_stores_nothing(
    custody: Client, wallet: WalletInfo
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        custody.create(_small(wallet, amount="1.5"))

    problem = refused.value
    assert (problem.status, problem.title) == (422, "Invalid payload")
    assert problem.type == "https://custody.dev/problems/invalid-payload"
    assert problem.detail.startswith("amount must be a decimal string of digits only")
    assert problem.problem["instance"] == "/v1/requests"  # the whole problem+json is kept
    assert problem.request_id is not None  # the answer's X-Request-Id: the call in the logs
    assert re.fullmatch(r"[0-9a-f]{32}", problem.request_id)
    assert custody.list().items == []


def test_a_float_amount_is_refused_before_anything_is_sent(
    custody: Client, wallet: WalletInfo
) -> None:
    with pytest.raises(TypeError, match=r"body\.amount is a float"):
        custody.create(withdrawal(wallet.name, amount=0.01))  # type: ignore[arg-type]
    assert custody.list().items == []


def test_waiting_times_out_on_a_request_that_waits_for_approvals_then_sees_it_cancelled(
    custody: Client, wallet: WalletInfo
) -> None:
    big = withdrawal(wallet.name, amount=str(APPROVAL_ABOVE + 1), nonce=next(_nonces))
    pending = custody.create(big)
    assert pending.status == "pending_approval"

    with pytest.raises(WaitTimedOut) as late:
        custody.wait(pending.id, timeout=1.5)
    assert late.value.request.status == "pending_approval"

    assert custody.cancel(pending.id).status == "cancelled"
    assert custody.wait(pending.id, timeout=5).status == "cancelled"
    assert [r.id for r in custody.list(status="cancelled").items] == [pending.id]
    assert custody.list(status="pending_approval").items == []
    with pytest.raises(Conflict):
        custody.cancel(pending.id)


def test_waiting_for_confirmed_where_nothing_broadcasts_ends_once_signed(
    custody: Client, wallet: WalletInfo
) -> None:
    """No node is connected to this chain: the server answers the poll of a signed request at
    once, and `wait` takes that for the end instead of polling until its timeout."""
    created = custody.create(_small(wallet))
    started = time.monotonic()
    done = custody.wait(created.id, timeout=60, until="confirmed")
    assert done.status == "signed"
    assert time.monotonic() - started < 30
