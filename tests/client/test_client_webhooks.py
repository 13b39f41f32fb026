"""`verify_webhook` on deliveries the server really signed (HSM key, real HTTP receiver)."""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.client import Client, WebhookVerificationFailed, verify_webhook
from tests.support.api import withdrawal
from tests.support.installation import ClientKeys, Installation, WalletInfo
from tests.webhooks.conftest import Receiver
from tests.webhooks.helpers import set_client_url


def _deliveries(receiver: Receiver, count: int) -> None:
    """Until the server's webhook thread delivered `count` (it polls every second)."""
    deadline = time.monotonic() + 20
    while len(receiver.accepted) < count:
        assert time.monotonic() < deadline, f"only {len(receiver.accepted)} deliveries came"
        time.sleep(0.05)


def test_real_deliveries_verify_and_tampered_ones_do_not(
    custody: Client,
    desk: ClientKeys,
    wallet: WalletInfo,
    installation: Installation,
    receiver: Receiver,
) -> None:
    set_client_url(installation, desk.name, receiver.url)
    created = custody.create(withdrawal(wallet.name, amount="5", nonce=20_000))
    custody.wait(created.id, timeout=30, until="signed")
    _deliveries(receiver, 3)
    pinned = custody.webhook_public_key()

    bodies = [verify_webhook(r.body, r.headers, pinned.public_key) for r in receiver.accepted]
    assert [b["status"] for b in bodies] == ["approved", "signing", "signed"]
    assert {b["id"] for b in bodies} == {created.id}
    assert pinned.json["public_key_pem"]  # the PEM form verifies as well
    last = receiver.accepted[-1]
    assert verify_webhook(last.body, last.headers, pinned.json["public_key_pem"]) == bodies[-1]

    tampered = json.dumps({**bodies[-1], "amount": "5000000"}).encode()
    with pytest.raises(WebhookVerificationFailed, match="does not verify"):
        verify_webhook(tampered, last.headers, pinned.public_key)
    # The signed timestamp is replayed much later: refused although the signature holds.
    later = int(last.headers["Custody-Timestamp"]) + 600
    with pytest.raises(WebhookVerificationFailed, match="more than 300 s off"):
        verify_webhook(last.body, last.headers, pinned.public_key, now=later)
    stranger = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(WebhookVerificationFailed, match="not the pinned key"):
        verify_webhook(last.body, last.headers, stranger)
    unsigned = {k: v for k, v in last.headers.items() if k.lower() != "custody-signature"}
    with pytest.raises(WebhookVerificationFailed, match="missing custody-signature"):
        verify_webhook(last.body, unsigned, pinned.public_key)
