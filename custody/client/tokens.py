"""The per-call token: an EdDSA JWT binding one HTTP call, as README's HTTP API section fixes it.

Claims: `sub` (client id), `uri` (path and query exactly as sent), `method`, `bodyHash` (hex
SHA-256 of the body bytes), `nonce` (fresh per call), `iat`, `exp`, and `idempotencyKey` on every
call that sends an `Idempotency-Key` header: the header picks which request a retry is answered
with, so it must be signed too.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

# The server accepts at most 60 s between iat and exp; 30 s leaves room for a slow network.
LIFETIME_SECONDS = 30
IDEMPOTENCY_CLAIM = "idempotencyKey"


def call_claims(
    client_id: str,
    method: str,
    uri: str,
    body: bytes = b"",
    *,
    idempotency_key: str | None = None,
    now: int | None = None,
    lifetime: int = LIFETIME_SECONDS,
) -> dict[str, Any]:
    """The claims of one call's token (a fresh nonce each time)."""
    issued = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "sub": client_id,
        "uri": uri,
        "method": method.upper(),
        "bodyHash": hashlib.sha256(body).hexdigest(),
        "nonce": secrets.token_hex(16),
        "iat": issued,
        "exp": issued + lifetime,
    }
    if idempotency_key is not None:
        claims[IDEMPOTENCY_CLAIM] = idempotency_key
    return claims


def sign_claims(claims: dict[str, Any], key: Ed25519PrivateKey) -> str:
    return jwt.encode(claims, key, algorithm="EdDSA")


def sign_call(
    client_id: str,
    key: Ed25519PrivateKey,
    method: str,
    uri: str,
    body: bytes = b"",
    *,
    idempotency_key: str | None = None,
) -> str:
    """The `Authorization: Bearer` token for one call."""
    claims = call_claims(client_id, method, uri, body, idempotency_key=idempotency_key)
    return sign_claims(claims, key)


def load_private_key(pem: bytes | str | Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM bytes or text, or from a PEM file's path."""
    data = pem.read_bytes() if isinstance(pem, Path) else pem
    raw = data.encode() if isinstance(data, str) else data
    key = serialization.load_pem_private_key(raw, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the client key must be an Ed25519 private key (openssl genpkey ed25519)")
    return key


def read_client_id(id_file_or_id: str | Path) -> str:
    """A client id given as is, or read from a file holding it (as `custody demo seed` writes)."""
    if isinstance(id_file_or_id, Path) or Path(id_file_or_id).is_file():
        return Path(id_file_or_id).read_text().strip()
    return id_file_or_id
