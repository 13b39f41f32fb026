"""A trading system's side of the API, written from DESIGN.md (not from custody's code)."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from tests.support.installation import ClientKeys

DESTINATION = "0xe3139eABD9dCaDCDC9e6f2848Ef4AfD85Dc0c1B7"


def make_token(
    client: ClientKeys,
    method: str,
    uri: str,
    body: bytes = b"",
    *,
    now: int | None = None,
    lifetime: int = 30,
    idempotency_key: str | None = None,
    **overrides: Any,
) -> str:
    """`idempotency_key`: the Idempotency-Key header the call sends, if any (signed as a claim)."""
    issued = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "sub": client.id,
        "uri": uri,
        "method": method,
        "bodyHash": hashlib.sha256(body).hexdigest(),
        "nonce": secrets.token_hex(16),
        "iat": issued,
        "exp": issued + lifetime,
        "idempotencyKey": idempotency_key,
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, client.private_key, algorithm="EdDSA")


def withdrawal(
    wallet: str,
    *,
    amount: str = "1000000000000000",
    nonce: int = 0,
    destination: str = DESTINATION,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "withdrawal",
        "wallet": wallet,
        "asset": "ETH",
        "amount": amount,
        "destination": destination,
        "evm": {
            "nonce": nonce,
            "gas": 21000,
            "max_fee_per_gas": "30000000000",
            "max_priority_fee_per_gas": "1000000000",
        },
    }
    body.update(extra)
    return body


class Api:
    """Signs every call the way a client must. `send` is an httpx client's request method."""

    def __init__(self, send: Callable[..., httpx.Response], client: ClientKeys) -> None:
        self.send = send
        self.client = client

    def call(
        self,
        method: str,
        uri: str,
        body: bytes = b"",
        *,
        headers: dict[str, str] | None = None,
        token: str | None = None,
    ) -> httpx.Response:
        headers = headers or {}
        key = headers.get("Idempotency-Key")
        token = token or make_token(self.client, method, uri, body, idempotency_key=key)
        all_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        return self.send(method, uri, content=body, headers=all_headers | headers)

    def create(self, payload: dict[str, Any] | bytes, key: str | None = None) -> httpx.Response:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.call(
            "POST", "/v1/requests", body, headers={"Idempotency-Key": key or str(uuid.uuid4())}
        )

    def get(self, request_id: str) -> httpx.Response:
        return self.call("GET", f"/v1/requests/{request_id}")
