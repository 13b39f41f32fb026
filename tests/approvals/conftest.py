from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient as HttpClient

from custody.approvals.approvers import add_approver
from tests.api.conftest import api, http, signer, wallet  # noqa: F401  (shared fixtures)
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, WalletInfo


@dataclass(frozen=True)
class Device:
    """An approver's phone: it holds the private key and signs statements (written from DESIGN)."""

    name: str
    key: Ed25519PrivateKey

    def statement(self, request_id: str, digest: str, decision: str) -> bytes:
        return bytes(
            rfc8785.dumps(
                {
                    "type": "custody.approval.v1",
                    "request_id": request_id,
                    "payload_digest": digest,
                    "decision": decision,
                    "approver": self.name,
                }
            )
        )

    def body(self, request_id: str, digest: str, decision: str = "approve") -> bytes:
        signature = self.key.sign(self.statement(request_id, digest, decision))
        return json.dumps(
            {
                "approver": self.name,
                "decision": decision,
                "signature": base64.b64encode(signature).decode(),
            }
        ).encode()


@pytest.fixture
def make_approver(installation: Installation) -> Callable[..., Device]:
    def make(*groups: str, device: bool = True) -> Device:
        key = Ed25519PrivateKey.generate()
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        name = f"ap-{secrets.token_hex(4)}"
        with installation.runtime.db.write() as session:
            add_approver(
                session,
                name=name,
                groups=list(groups) or ["treasury"],
                device_key_pem=pem if device else None,
                actor="test",
            )
        return Device(name, key)

    return make


QUORUM_POLICY = """
version: 1
rules:
  - id: two-treasury
    match: {{type: withdrawal, wallets: [{wallet}]}}
    action: {{require_approvals: {{count: 2, group: treasury, expires_after: {expires}}}}}
  - {{id: allow-all, match: {{type: withdrawal}}, action: allow}}
"""


@pytest.fixture
def quorum_wallet(installation: Installation, wallet: WalletInfo) -> Iterator[WalletInfo]:  # noqa: F811
    installation.apply_policy(QUORUM_POLICY.format(wallet=wallet.name, expires="24h"))
    try:
        yield wallet
    finally:
        installation.allow_all_policy()


def post_approval(client: HttpClient, request_id: str, body: bytes) -> httpx.Response:
    return client.post(
        f"/v1/requests/{request_id}/approvals",
        content=body,
        headers={"Content-Type": "application/json"},
    )


def pending(trading: Api, source: WalletInfo, nonce: int = 0) -> dict[str, Any]:
    """A withdrawal from `source` that waits for approvals."""
    created: dict[str, Any] = trading.create(withdrawal(source.name, nonce=nonce)).json()
    assert created["status"] == "pending_approval", created
    return created
