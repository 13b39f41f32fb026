"""`GET /v1/requests/{id}?wait=S`: a client learns of a status change without a poll loop.

The poll is woken by the commit that changes the status (custody.wakeup.Changes), not by a
timer: these tests set the recheck interval longer than their waits, so a poll that answers
with the new status before its `wait` ran out was woken by the change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from custody import wakeup
from custody.requests import repository
from custody.signing.worker import SignerWorker
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, WalletInfo

LONG = 30  # the most a poll may wait; the tests give up on a poll well before it ends


@pytest.fixture(autouse=True)
def no_recheck(installation: Installation, monkeypatch: pytest.MonkeyPatch) -> None:
    """Polls look at the database on their own only after a minute: only a wake-up answers
    them sooner."""
    settings = installation.runtime.settings.model_copy(update={"long_poll_recheck_seconds": 60})
    monkeypatch.setattr(installation.runtime, "settings", settings)


def _poll_in_background(
    api: Api, request_id: str, wait: float, seen: str | None = None
) -> tuple[threading.Thread, list]:
    answers: list[httpx.Response] = []
    uri = f"/v1/requests/{request_id}?wait={wait}" + (f"&seen={seen}" if seen else "")
    thread = threading.Thread(target=lambda: answers.append(api.call("GET", uri)))
    thread.start()
    return thread, answers


def _until_waiting(installation: Installation, polls: int) -> None:
    deadline = time.monotonic() + 20
    while installation.runtime.changes.waiting < polls:
        assert time.monotonic() < deadline, "the long poll never started waiting"
        time.sleep(0.01)


def _approved(api: Api, wallet: WalletInfo, nonce: int) -> str:
    created = api.create(withdrawal(wallet.name, amount="5", nonce=nonce))
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "approved"
    return str(created.json()["id"])


def test_a_long_poll_answers_when_the_request_is_signed(
    api: Api, wallet: WalletInfo, signer: SignerWorker, installation: Installation
) -> None:
    request_id = _approved(api, wallet, nonce=1)
    thread, answers = _poll_in_background(api, request_id, LONG)
    _until_waiting(installation, 1)
    assert signer.drain() == 1  # approved -> signing -> signed, in two commits
    thread.join(LONG / 2)
    assert not thread.is_alive(), "the poll slept through the change"
    assert answers[0].status_code == 200, answers[0].text
    body: dict[str, Any] = answers[0].json()
    # `signing` lasts milliseconds: the poll passes over it and answers with the result.
    assert body["status"] == "signed"
    assert body["result"]["raw_transaction"].startswith("0x02")


def test_a_cancelled_request_wakes_its_poll(
    api: Api, wallet: WalletInfo, installation: Installation
) -> None:
    request_id = _approved(api, wallet, nonce=2)
    thread, answers = _poll_in_background(api, request_id, LONG)
    _until_waiting(installation, 1)
    cancelled = api.call("POST", f"/v1/requests/{request_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    thread.join(LONG / 2)
    assert not thread.is_alive(), "the poll slept through the change"
    assert answers[0].json()["status"] == "cancelled"


def test_a_final_request_is_answered_at_once(
    api: Api, wallet: WalletInfo, signer: SignerWorker, installation: Installation
) -> None:
    request_id = _approved(api, wallet, nonce=3)
    assert signer.drain() == 1
    thread, answers = _poll_in_background(api, request_id, LONG)
    thread.join(LONG / 2)
    assert not thread.is_alive(), "a signed request kept its poll waiting"
    assert answers[0].json()["status"] == "signed"
    assert installation.runtime.changes.waiting == 0


def test_a_poll_with_no_news_answers_at_its_end_with_the_request_as_it_is(
    api: Api, wallet: WalletInfo, installation: Installation
) -> None:
    request_id = _approved(api, wallet, nonce=4)  # no signer runs: it stays approved
    answer = api.call("GET", f"/v1/requests/{request_id}?wait=0.3")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "approved"
    assert installation.runtime.changes.waiting == 0  # nothing left behind


@pytest.mark.parametrize("seen", ["", "&seen=approved"])
def test_another_clients_request_is_not_found_even_when_waiting(
    api: Api, wallet: WalletInfo, installation: Installation, seen: str
) -> None:
    """Also when the poll names the status the request has: that status is read for the
    caller's own requests only."""
    request_id = _approved(api, wallet, nonce=5)
    other = Api(api.send, installation.client())
    answer = other.call("GET", f"/v1/requests/{request_id}?wait=5{seen}")
    assert answer.status_code == 404, answer.text
    assert installation.runtime.changes.waiting == 0


@pytest.mark.parametrize("wait", ["31", "-1", "soon", "nan", "inf"])
def test_a_wait_out_of_bounds_is_refused(api: Api, wallet: WalletInfo, wait: str) -> None:
    request_id = _approved(api, wallet, nonce=6)
    answer = api.call("GET", f"/v1/requests/{request_id}?wait={wait}")
    assert answer.status_code in (400, 422), answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "wait" in answer.text


def test_a_poll_naming_a_status_the_request_has_left_answers_at_once(
    api: Api, wallet: WalletInfo, installation: Installation
) -> None:
    """The caller saw `pending_approval`; the request is `approved` by now: that is news, and no
    change is coming to wake the poll (no signer runs here)."""
    request_id = _approved(api, wallet, nonce=7)
    thread, answers = _poll_in_background(api, request_id, LONG, seen="pending_approval")
    thread.join(LONG / 2)
    assert not thread.is_alive(), "the poll waited past a change made before it arrived"
    assert answers[0].status_code == 200, answers[0].text
    assert answers[0].json()["status"] == "approved"
    assert installation.runtime.changes.waiting == 0


def test_a_poll_naming_the_status_the_request_has_waits_for_the_next_change(
    api: Api, wallet: WalletInfo, signer: SignerWorker, installation: Installation
) -> None:
    request_id = _approved(api, wallet, nonce=8)
    thread, answers = _poll_in_background(api, request_id, LONG, seen="approved")
    _until_waiting(installation, 1)
    assert signer.drain() == 1
    thread.join(LONG / 2)
    assert not thread.is_alive(), "the poll slept through the change"
    assert answers[0].json()["status"] == "signed"


def test_a_poll_naming_no_status_of_ours_is_refused(api: Api, wallet: WalletInfo) -> None:
    request_id = _approved(api, wallet, nonce=9)
    answer = api.call("GET", f"/v1/requests/{request_id}?wait=1&seen=done")
    assert answer.status_code in (400, 422), answer.text
    assert "seen" in answer.text


def test_a_claim_wakes_no_poll_and_the_signature_does(
    api: Api,
    wallet: WalletInfo,
    signer: SignerWorker,
    installation: Installation,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Polls pass over `signing`: its commit wakes none of them (each would read again while the
    HSM signs, for nothing); the commit of `signed` wakes them."""
    request_id = _approved(api, wallet, nonce=10)
    woken: list[Collection[str] | None] = []
    monkeypatch.setattr(installation.runtime.changes, "changed", woken.append)
    assert signer.drain() == 1  # approved -> signing, then signing -> signed: two commits
    assert woken == [{request_id}]


def _counting_views(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The requests whose whole view a poll builds (its approvals are a part of every view)."""
    from custody.api import requests as route

    built: list[str] = []
    view_of = route.approvals_view

    def counted(session: Any, request: Any) -> Any:
        built.append(request.id)
        return view_of(session, request)

    monkeypatch.setattr(route, "approvals_view", counted)
    return built


def test_a_poll_naming_the_status_the_request_has_builds_its_view_once(
    api: Api,
    wallet: WalletInfo,
    signer: SignerWorker,
    installation: Installation,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Waiting on a create's answer reads the status alone until it moves: the view (the
    approvals, the freezes, the replacement) is built once, for the answer."""
    request_id = _approved(api, wallet, nonce=11)
    built = _counting_views(monkeypatch)
    thread, answers = _poll_in_background(api, request_id, LONG, seen="approved")
    _until_waiting(installation, 1)
    assert built == []
    assert signer.drain() == 1
    thread.join(LONG / 2)
    assert not thread.is_alive(), "the poll slept through the change"
    assert answers[0].json()["status"] == "signed"
    assert built == [request_id]


def test_a_poll_that_waits_on_the_status_alone_still_answers_with_the_request_as_it_is(
    api: Api, wallet: WalletInfo, installation: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No news before the wait ends: the answer is built then, not taken from the call's start."""
    request_id = _approved(api, wallet, nonce=12)
    built = _counting_views(monkeypatch)
    started = time.monotonic()
    answer = api.call("GET", f"/v1/requests/{request_id}?wait=0.5&seen=approved")
    assert time.monotonic() - started >= 0.5
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "approved"
    assert built == [request_id]


def test_a_change_wakes_the_polls_on_its_request_only(
    api: Api, wallet: WalletInfo, installation: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another request's change leaves a poll asleep: it does not even read its status, which
    every poll of the process did for every change. A change that cannot say which requests it
    moved (a datagram naming none) still wakes it, and it reads, and waits on."""
    quiet, changing = _approved(api, wallet, nonce=14), _approved(api, wallet, nonce=15)
    status_reads: list[str] = []
    status_for_client = repository.status_for_client

    def counted(session: Session, client_id: str, request_id: str) -> str | None:
        status_reads.append(request_id)
        return status_for_client(session, client_id, request_id)

    monkeypatch.setattr(repository, "status_for_client", counted)
    quiet_poll, quiet_answers = _poll_in_background(api, quiet, LONG)
    changing_poll, changing_answers = _poll_in_background(api, changing, LONG)
    _until_waiting(installation, 2)
    assert api.call("POST", f"/v1/requests/{changing}/cancel").status_code == 200
    changing_poll.join(LONG / 2)
    assert not changing_poll.is_alive(), "the poll slept through the change"
    assert changing_answers[0].json()["status"] == "cancelled"
    assert status_reads == [changing]
    assert quiet_poll.is_alive()
    assert installation.runtime.changes.waiting == 1

    installation.runtime.changes.hear(wakeup.WAKE_ALL)
    deadline = time.monotonic() + 20
    while status_reads != [changing, quiet] or installation.runtime.changes.waiting != 1:
        assert time.monotonic() < deadline, f"the poll on {quiet} was not woken: {status_reads}"
        time.sleep(0.01)
    assert quiet_poll.is_alive()  # its request kept its status
    assert api.call("POST", f"/v1/requests/{quiet}/cancel").status_code == 200
    quiet_poll.join(LONG / 2)
    assert not quiet_poll.is_alive(), "the poll slept through the change"
    assert quiet_answers[0].json()["status"] == "cancelled"
