"""The dispatcher: group notifications, and crash safety (nothing lost, nothing doubled)."""

from __future__ import annotations

import json
import secrets
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from custody.policy.stored import read_decision
from custody.store.base import utcnow
from custody.store.models import WebhookCursor, WebhookDelivery
from custody.webhooks import dispatcher, repository
from custody.webhooks.dispatcher import dispatch_all, dispatch_once
from custody.webhooks.runner import start_webhooks
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, WalletInfo
from tests.webhooks.conftest import Pump, Receiver
from tests.webhooks.helpers import (
    deliveries,
    service_key,
    set_client_url,
    set_group_url,
    verified,
)


def test_request_waiting_for_approval_notifies_its_group(
    api: Api, wallet: WalletInfo, installation: Installation, receiver: Receiver, pump: Pump
) -> None:
    group = f"wh-ops-{secrets.token_hex(3)}"
    installation.apply_policy(
        "version: 1\nrules:\n"
        f"  - {{id: big, match: {{type: withdrawal}}, "
        f"action: {{require_approvals: {{count: 2, group: {group}}}}}}}\n"
    )
    try:
        set_group_url(installation, group, receiver.url)
        created = api.create(withdrawal(wallet.name, amount="5000"))
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "pending_approval"
    finally:
        installation.allow_all_policy()
    pump()

    (body,) = [verified(r, service_key(api)) for r in receiver.accepted]
    assert body["event"] == "approvals.waiting"
    assert body["request"] == created.json()["id"]
    assert body["summary"] == created.json()["payload"]["summary"]
    assert body["group"] == group
    assert body["required_approvals"] == [{"group": group, "count": 2}]
    assert "transaction" not in body
    (row,) = deliveries(installation, receiver.url)
    assert row.target == f"group:{group}"
    cancelled = api.call("POST", f"/v1/requests/{created.json()['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text


def test_several_groups_are_each_notified(installation: Installation) -> None:
    decision = {
        "decision": "require_approvals",
        "rule": "large",
        "reason": "needs two desks",
        "count": 3,
        "group": None,
        "expires_after_seconds": None,
        "all_of": [{"count": 2, "group": "treasury"}, {"count": 1, "group": "risk"}],
    }
    assert dispatcher.required_groups(read_decision(json.dumps(decision))) == [
        {"group": "treasury", "count": 2},
        {"group": "risk", "count": 1},
    ]
    allow = {"decision": "allow", "rule": "small", "reason": "fits"}
    assert dispatcher.required_groups(read_decision(json.dumps(allow))) == []


def test_status_changes_are_what_get_sent() -> None:
    created = {"request": "r", "from": None, "to": "approved", "reason": "rule allow-all"}
    assert dispatcher.status_after("request.created", created) == "approved"
    signed = {"request": "r", "from": "signing", "to": "signed", "reason": "signed"}
    assert dispatcher.status_after("request.signed", signed) == "signed"
    # Decisions and other records are not status changes; only the lifecycle's shape is.
    assert dispatcher.status_after("policy.evaluated", {"request": "r", "result": {}}) is None
    assert dispatcher.status_after("policy.rechecked", {"request": "r", "allowed": True}) is None
    assert dispatcher.status_after("request.signed", {"to": "signed"}) is None
    assert dispatcher.status_after("request.signed", {"from": "x", "to": "unheard-of"}) is None
    assert dispatcher.status_after("client.added", {}) is None
    # An approval that does not complete the quorum is news: the request still waits.
    assert dispatcher.status_after("approval.added", {"request": "r"}) == "pending_approval"


def _client_rows(installation: Installation, url: str) -> list[tuple[int, str]]:
    return [(r.ledger_index, r.target) for r in deliveries(installation, url)]


def test_dispatching_the_same_entries_twice_queues_nothing_twice(
    api: Api, wallet: WalletInfo, installation: Installation, receiver: Receiver
) -> None:
    db = installation.runtime.db
    dispatch_all(db)
    with db.read() as session:
        before = repository.cursor_position(session)
    set_client_url(installation, api.client.name, receiver.url)
    for amount in ("1", "2"):
        created = api.create(withdrawal(wallet.name, amount=amount, nonce=int(amount)))
        assert created.status_code == 201, created.text
    assert dispatch_all(db) == 2
    first = _client_rows(installation, receiver.url)
    assert len(first) == 2

    # As after a crash that lost the cursor's progress: the same entries are read again.
    with db.write() as session:
        session.execute(update(WebhookCursor).values(next_index=before))
    assert dispatch_all(db) == 2  # attempted, and dropped by the unique constraint
    assert _client_rows(installation, receiver.url) == first
    with db.read() as session:
        assert repository.cursor_position(session) > before


def test_a_pass_that_fails_midway_leaves_no_trace(
    api: Api,
    wallet: WalletInfo,
    installation: Installation,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = installation.runtime.db
    dispatch_all(db)
    set_client_url(installation, api.client.name, receiver.url)
    created = api.create(withdrawal(wallet.name, amount="3"))
    assert created.status_code == 201, created.text
    with db.read() as session:
        before = repository.cursor_position(session)
    original = repository.insert_deliveries

    def insert_then_crash(*args: object, **kwargs: object) -> None:
        original(*args, **kwargs)  # type: ignore[arg-type]
        raise RuntimeError("crash after queuing, before the cursor moved")

    monkeypatch.setattr(repository, "insert_deliveries", insert_then_crash)
    with pytest.raises(RuntimeError):
        dispatch_once(db)
    monkeypatch.undo()
    assert _client_rows(installation, receiver.url) == []
    with db.read() as session:
        assert repository.cursor_position(session) == before
    dispatch_all(db)
    assert len(_client_rows(installation, receiver.url)) == 1


def test_concurrent_dispatchers_queue_each_delivery_once(
    api: Api, wallet: WalletInfo, installation: Installation, receiver: Receiver
) -> None:
    db = installation.runtime.db
    dispatch_all(db)
    set_client_url(installation, api.client.name, receiver.url)
    for nonce in range(5):
        created = api.create(withdrawal(wallet.name, amount="7", nonce=nonce))
        assert created.status_code == 201, created.text
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        try:
            barrier.wait()
            dispatch_all(db, batch=2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    rows = _client_rows(installation, receiver.url)
    assert len(rows) == len(set(rows)) == 5
    with db.read() as session:
        total = session.execute(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.url == receiver.url)
        ).scalar_one()
    assert total == 5


def test_the_background_thread_delivers(
    api: Api, wallet: WalletInfo, installation: Installation, receiver: Receiver
) -> None:
    from custody.runtime import Runtime

    set_client_url(installation, api.client.name, receiver.url)
    created = api.create(withdrawal(wallet.name, amount="11"))
    assert created.status_code == 201, created.text
    runtime = Runtime(installation.settings.model_copy(update={"webhook_poll_seconds": 0.05}))
    stop = threading.Event()
    thread = start_webhooks(runtime, stop)
    assert thread is not None
    try:
        deadline = utcnow() + timedelta(seconds=30)
        while not receiver.accepted and utcnow() < deadline:
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
        runtime.close()
    assert not thread.is_alive()
    (body,) = [verified(r, service_key(api)) for r in receiver.accepted]
    assert body["id"] == created.json()["id"]
    assert body["status"] == "approved"
