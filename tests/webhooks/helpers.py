"""A receiver's side of webhooks, written from docs/webhooks.md (not from custody's code)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from custody.store.models import WebhookDelivery
from custody.webhooks import service
from tests.support.api import Api
from tests.support.installation import Installation
from tests.webhooks.conftest import Received

MAX_AGE_SECONDS = 300


def service_key(api: Api) -> Ed25519PublicKey:
    answer = api.call("GET", "/v1/webhooks/public-key")
    assert answer.status_code == 200, answer.text
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(answer.json()["public_key"]))


def verified(received: Received, key: Ed25519PublicKey) -> dict[str, Any]:
    """The body, once its signature verified and its timestamp is fresh (raises otherwise)."""
    headers = {k.lower(): v for k, v in received.headers.items()}
    timestamp = headers["custody-timestamp"]
    scheme, _, signature = headers["custody-signature"].partition("=")
    assert scheme == "ed25519"
    key.verify(base64.b64decode(signature), timestamp.encode() + b"." + received.body)
    assert abs(time.time() - int(timestamp)) < MAX_AGE_SECONDS
    body: dict[str, Any] = json.loads(received.body)
    return body


def set_client_url(installation: Installation, name: str, url: str | None) -> None:
    with installation.runtime.db.write() as session:
        service.set_client_webhook(session, name=name, url=url, actor="test")


def set_group_url(installation: Installation, group: str, url: str | None) -> None:
    with installation.runtime.db.write() as session:
        service.set_group_url(session, group=group, url=url, actor="test")


def deliveries(installation: Installation, url: str) -> list[WebhookDelivery]:
    with installation.runtime.db.read() as session:
        return list(
            session.execute(
                select(WebhookDelivery)
                .where(WebhookDelivery.url == url)
                .order_by(WebhookDelivery.ledger_index)
            ).scalars()
        )
