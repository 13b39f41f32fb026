"""Verifying a webhook from custody (docs/webhooks.md), on the receiver's side.

custody signs `b"<Custody-Timestamp>." + body` with its Ed25519 webhook key; a receiver verifies
over the exact body bytes, before parsing them, with the public key it pinned. The timestamp is
signed too, so a captured delivery cannot be replayed later under a fresh one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from custody.client.errors import WebhookVerificationFailed

MAX_AGE_SECONDS = 300  # older or newer than this: a replay, or a clock problem

PublicKey = Ed25519PublicKey | bytes | str


def verify_webhook(
    body: bytes,
    headers: Mapping[str, str],
    public_key: PublicKey,
    *,
    max_age: float = MAX_AGE_SECONDS,
    now: float | None = None,
) -> dict[str, Any]:
    """The notification, once its signature verified and its timestamp is fresh; else
    WebhookVerificationFailed (answer 401). `public_key`: the key object, its 32 raw bytes, their
    hex (`public_key` of `GET /v1/webhooks/public-key`) or its PEM. Delivery is at least once:
    de-duplicate by the `Custody-Delivery-Id` header afterwards."""
    key = _public_key(public_key)
    found = {name.lower(): value for name, value in headers.items()}
    timestamp = _header(found, "custody-timestamp")
    scheme, _, signature = _header(found, "custody-signature").partition("=")
    if scheme != "ed25519":
        raise WebhookVerificationFailed(f"unknown signature scheme {scheme!r}")
    key_id = found.get("custody-key-id")
    if key_id is not None and key_id != _key_id(key):
        raise WebhookVerificationFailed(
            f"signed with key {key_id}, not the pinned key {_key_id(key)} (was it rotated?)"
        )
    try:
        key.verify(base64.b64decode(signature, validate=True), timestamp.encode() + b"." + body)
    except (InvalidSignature, binascii.Error, ValueError):
        raise WebhookVerificationFailed("the signature does not verify over this body") from None
    # Checked after the signature: only a signed timestamp says anything about the delivery.
    if not timestamp.isdigit() or abs((now or time.time()) - int(timestamp)) > max_age:
        raise WebhookVerificationFailed(f"timestamp {timestamp!r} is more than {max_age:g} s off")
    try:
        notification = json.loads(body)
    except ValueError:
        raise WebhookVerificationFailed("the signed body is not JSON") from None
    if not isinstance(notification, dict):
        raise WebhookVerificationFailed("the signed body is not a JSON object")
    return notification


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        raise WebhookVerificationFailed(f"missing {name} header")
    return value


def _public_key(given: PublicKey) -> Ed25519PublicKey:
    if isinstance(given, Ed25519PublicKey):
        return given
    if isinstance(given, bytes):
        return Ed25519PublicKey.from_public_bytes(given)
    if given.lstrip().startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(given.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the webhook key must be an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(given))


def _key_id(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]
