"""A real receiver gets every status change, signed, in order; survives being down; gives up."""

from __future__ import annotations

from datetime import timedelta

from custody.signing.worker import SignerWorker
from custody.store.base import utcnow
from custody.webhooks.deliverer import DeliveryPolicy
from tests.support.api import Api, withdrawal
from tests.support.cli import invoke, ok_json
from tests.support.installation import Installation, WalletInfo
from tests.webhooks.conftest import Pump, Receiver, abandon
from tests.webhooks.helpers import deliveries, service_key, set_client_url, verified

SIGNED_PATH = ["approved", "signing", "signed"]


def _signed_request(api: Api, wallet: WalletInfo, signer: SignerWorker) -> str:
    created = api.create(withdrawal(wallet.name, amount="1000"))
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "approved"
    assert signer.drain() >= 1
    request_id: str = created.json()["id"]
    return request_id


def test_receiver_gets_every_status_change_signed_and_in_order(
    api: Api,
    wallet: WalletInfo,
    signer: SignerWorker,
    installation: Installation,
    receiver: Receiver,
    pump: Pump,
) -> None:
    set_client_url(installation, api.client.name, receiver.url)
    request_id = _signed_request(api, wallet, signer)

    pump()

    key = service_key(api)
    bodies = [verified(r, key) for r in receiver.accepted]
    assert [b["status"] for b in bodies] == SIGNED_PATH
    assert [b["event"] for b in bodies] == ["request.created", "request.signing", "request.signed"]
    assert {b["id"] for b in bodies} == {request_id}
    indices = [b["ledger_index"] for b in bodies]
    assert indices == sorted(indices)
    assert bodies[-1]["result"]["tx_hash"].startswith("0x")
    ids = [r.headers["Custody-Delivery-Id"] for r in receiver.accepted]
    assert len(set(ids)) == 3
    assert all(r.headers["Custody-Key-Id"] for r in receiver.accepted)
    rows = deliveries(installation, receiver.url)
    assert [(r.status, r.attempts) for r in rows] == [("delivered", 1)] * 3

    # Nothing new: another pass sends nothing again.
    pump()
    assert len(receiver.accepted) == 3


def test_receiver_down_for_a_while_gets_everything_later_in_order_once(
    api: Api,
    wallet: WalletInfo,
    signer: SignerWorker,
    installation: Installation,
    receiver: Receiver,
    pump: Pump,
) -> None:
    set_client_url(installation, api.client.name, receiver.url)
    receiver.status = 503
    request_id = _signed_request(api, wallet, signer)

    start = utcnow() + timedelta(seconds=5)  # after the deliveries are queued
    waits = []
    for step in range(4):
        moment = start + timedelta(seconds=60 * step)
        pump(now=moment)
        rows = deliveries(installation, receiver.url)
        assert [r.status for r in rows] == ["pending"] * 3
        head, *rest = rows
        assert head.attempts == step + 1
        assert head.last_error == "HTTP 503"
        # later entries wait for the first one: receivers see statuses in order
        assert all(r.attempts == 0 for r in rest)
        waits.append((head.next_attempt_at - moment).total_seconds())
    assert waits == [1, 2, 4, 8]
    assert receiver.refused == 4

    # Not due yet: nothing is attempted.
    pump(now=start + timedelta(seconds=180 + 7))
    assert receiver.refused == 4

    receiver.status = 200
    pump(now=start + timedelta(seconds=180 + 8))

    key = service_key(api)
    bodies = [verified(r, key) for r in receiver.accepted]
    assert [b["status"] for b in bodies] == SIGNED_PATH
    assert {b["id"] for b in bodies} == {request_id}
    ids = [r.headers["Custody-Delivery-Id"] for r in receiver.accepted]
    assert len(ids) == len(set(ids)) == 3
    rows = deliveries(installation, receiver.url)
    assert [r.status for r in rows] == ["delivered"] * 3
    assert [r.attempts for r in rows] == [5, 1, 1]
    assert all(r.last_error is None for r in rows)


def test_closed_port_counts_as_failure(
    api: Api, wallet: WalletInfo, installation: Installation, pump: Pump
) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/nobody"
    set_client_url(installation, api.client.name, url)
    try:
        created = api.create(withdrawal(wallet.name, amount="1000"))
        assert created.status_code == 201, created.text
        pump(now=utcnow() + timedelta(seconds=5))
        (row,) = deliveries(installation, url)
        assert row.status == "pending"
        assert row.attempts == 1
        assert row.last_error is not None
        assert "Connect" in row.last_error
    finally:
        abandon(installation, url)


def test_gives_up_after_max_attempts_and_retry_puts_it_back(
    api: Api, wallet: WalletInfo, installation: Installation, receiver: Receiver, pump: Pump
) -> None:
    set_client_url(installation, api.client.name, receiver.url)
    receiver.status = 500
    created = api.create(withdrawal(wallet.name, amount="1000"))
    assert created.status_code == 201, created.text
    policy = DeliveryPolicy(max_attempts=3, timeout_seconds=5)
    start = utcnow() + timedelta(seconds=5)  # after the deliveries are queued
    for step in range(4):
        pump(policy, now=start + timedelta(minutes=10 * step))
    (row,) = deliveries(installation, receiver.url)
    assert row.status == "failed"
    assert row.attempts == 3
    assert receiver.refused == 3

    env = installation.env
    failed = ok_json(invoke(["webhooks", "list", "--status", "failed", "--json"], env))
    listed = [d for d in failed if d["id"] == row.id]
    assert listed == [
        {
            "id": row.id,
            "ledger_index": row.ledger_index,
            "target": f"client:{api.client.id}",
            "url": receiver.url,
            "event": "request.created",
            "status": "failed",
            "attempts": 3,
            "last_error": "HTTP 500",
            "created_at": listed[0]["created_at"],
            "next_attempt_at": None,
            "delivered_at": None,
        }
    ]
    human = invoke(["webhooks", "list"], env)
    assert human.returncode == 0, human.stderr

    retried = ok_json(invoke(["webhooks", "retry", str(row.id), "--json"], env))
    assert retried["status"] == "pending"
    assert retried["attempts"] == 0
    receiver.status = 200
    pump(policy)
    (row,) = deliveries(installation, receiver.url)
    assert row.status == "delivered"
    assert [verified(r, service_key(api))["status"] for r in receiver.accepted] == ["approved"]

    again = invoke(["webhooks", "retry", str(row.id)], env)
    assert again.returncode != 0
    assert "already delivered" in again.stderr
    missing = invoke(["webhooks", "retry", "999999999"], env)
    assert missing.returncode != 0
