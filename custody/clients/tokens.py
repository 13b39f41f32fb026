"""Tokens custody signs itself, in the HSM, for requests people start in the approver app.

A maker's withdrawal has no trading client to sign it. So the app's internal client has a key
of its own in the HSM (`approver-app`), and the app signs each maker request's call with it, as
a client would, naming the maker in a `maker` claim. The signer then checks a maker request like
any other: a database insider cannot write one in, nor change who made it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable

from custody.clients.auth import CREATE_PATH, IDEMPOTENCY_CLAIM

MAKER_CLAIM = "maker"
LIFETIME_SECONDS = 60


def maker_token(
    *,
    client_id: str,
    body: bytes,
    idempotency_key: str,
    maker: str,
    sign: Callable[[bytes], bytes],
) -> str:
    """An EdDSA JWT for POST /v1/requests, exactly as a client would send it, signed by `sign`
    (Ed25519 in the HSM)."""
    now = int(time.time())
    header = {"alg": "EdDSA", "typ": "JWT"}
    claims = {
        "sub": client_id,
        "uri": CREATE_PATH,
        "method": "POST",
        "bodyHash": hashlib.sha256(body).hexdigest(),
        "nonce": secrets.token_hex(16),
        "iat": now,
        "exp": now + LIFETIME_SECONDS,
        IDEMPOTENCY_CLAIM: idempotency_key,
        MAKER_CLAIM: maker,
    }
    signing_input = f"{_b64(json.dumps(header))}.{_b64(json.dumps(claims))}"
    signature = sign(signing_input.encode())
    return f"{signing_input}.{_b64(signature)}"


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
