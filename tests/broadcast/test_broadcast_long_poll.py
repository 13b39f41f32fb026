"""A long poll on a transaction for a connected chain: `signed` is not the end there, so the poll
waits for the broadcaster; on a chain without a node it is, and the poll answers at once."""

from __future__ import annotations

import threading
import time

import httpx

from tests.api.test_api_long_poll import LONG
from tests.broadcast.conftest import Connected
from tests.broadcast.test_broadcast_nonces import bare_withdrawal


def test_a_signed_transaction_keeps_its_poll_until_the_node_has_it(connected: Connected) -> None:
    created = connected.api.create(bare_withdrawal(connected.wallet.name))
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    connected.signer.drain()
    assert connected.status(request_id) == "signed"

    answers: list[httpx.Response] = []
    poll = threading.Thread(
        target=lambda: answers.append(
            connected.api.call("GET", f"/v1/requests/{request_id}?wait={LONG}")
        )
    )
    poll.start()
    changes = connected.installation.runtime.changes
    deadline = time.monotonic() + 20
    while changes.waiting < 1:
        assert time.monotonic() < deadline, "the poll answered `signed` without waiting"
        time.sleep(0.01)
    connected.broadcaster.run_once()
    poll.join(LONG / 2)
    assert not poll.is_alive(), "the poll slept through the broadcast"
    assert answers[0].json()["status"] in ("broadcast", "confirmed"), answers[0].text
