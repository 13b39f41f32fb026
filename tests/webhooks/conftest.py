"""Webhook tests: the API fixtures, plus a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from sqlalchemy import update

from custody.store.models import ApproverGroupSettings, Client, WebhookDelivery
from custody.webhooks.deliverer import DeliveryPolicy, deliver_due
from custody.webhooks.dispatcher import dispatch_all
from custody.webhooks.signing import BodySigner
from tests.api.conftest import api, http, signer, wallet  # noqa: F401
from tests.support.installation import Installation


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers `status` to every POST and keeps what it accepted (2xx) and what it refused."""

    url: str
    status: int = 200
    accepted: list[Received] = field(default_factory=list)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                status = receiver.status
                if 200 <= status < 300:
                    receiver.accepted.append(Received(dict(self.headers.items()), body))
                else:
                    receiver.refused += 1
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def receiver(installation: Installation) -> Iterator[Receiver]:
    target = Receiver(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(target))
    target.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield target
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        abandon(installation, target.url)


def abandon(installation: Installation, url: str) -> None:
    """Nothing more goes to `url`: queued or later deliveries must not reach another test's
    receiver that happens to get the same port afterwards."""
    with installation.runtime.db.write() as session:
        session.execute(update(Client).where(Client.webhook_url == url).values(webhook_url=None))
        session.execute(
            update(ApproverGroupSettings)
            .where(ApproverGroupSettings.notify_url == url)
            .values(notify_url=None)
        )
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.url == url, WebhookDelivery.status == "pending")
            .values(status="failed", last_error="test receiver closed")
        )


@dataclass
class Pump:
    """Runs dispatcher and deliverer passes directly (no thread), with a chosen clock."""

    installation: Installation
    http: httpx.Client
    signer: BodySigner

    def __call__(self, policy: DeliveryPolicy | None = None, now: datetime | None = None) -> int:
        db = self.installation.runtime.db
        dispatch_all(db)
        chosen = policy or DeliveryPolicy(timeout_seconds=5)
        return deliver_due(db, self.signer, chosen, http=self.http, now=now)


@pytest.fixture
def pump(installation: Installation) -> Iterator[Pump]:
    with httpx.Client() as client:
        yield Pump(installation, client, BodySigner(installation.runtime))
