"""Each step after `signed` is a webhook to the requesting client, from its ledger entry."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from custody.webhooks.runner import run_once
from custody.webhooks.signing import BodySigner
from tests.broadcast.conftest import Connected
from tests.broadcast.test_broadcast_nonces import bare_withdrawal
from tests.support.cli import invoke


@pytest.fixture
def received() -> Iterator[tuple[str, list[dict[str, object]]]]:
    bodies: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks", bodies
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_broadcast_and_confirmed_reach_the_client_as_webhooks(
    connected: Connected, received: tuple[str, list[dict[str, object]]]
) -> None:
    url, bodies = received
    inst, client = connected.installation, connected.api.client
    assert invoke(["clients", "set-webhook", client.name, url], inst.env).returncode == 0
    try:
        created = connected.api.create(bare_withdrawal(connected.wallet.name))
        request_id = created.json()["id"]
        connected.settle([request_id], lambda s: s == "confirmed")
        with httpx.Client() as http:
            run_once(inst.runtime, BodySigner(inst.runtime), http=http)
    finally:
        invoke(["clients", "set-webhook", client.name, "--clear"], inst.env)

    mine = [b for b in bodies if b["id"] == request_id]
    assert [b["event"] for b in mine][-3:] == [
        "request.signed",
        "request.broadcast",
        "request.confirmed",
    ]
    confirmed = mine[-1]
    assert confirmed["status"] == "confirmed"
    result = confirmed["result"]
    assert isinstance(result, dict)
    assert result["block_number"] >= 1
    assert result["confirmations"] >= 1
