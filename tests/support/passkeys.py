"""A passkey in software: what a phone's authenticator and browser answer together, written from
the WebAuthn spec (Level 2 §6.1, §7.2; COSE RFC 9053 §7.1) rather than from custody's code.

ES256 on P-256, user present and verified, a sign count that grows with each use. For tests
that need passkey approvals without a browser; the Chromium virtual authenticator in tests/web
covers the real thing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

USER_PRESENT = 0x01
USER_VERIFIED = 0x04


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class SoftPasskey:
    rp_id: str
    origin: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=_new_key)
    raw_id: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    sign_count: int = 0

    @property
    def id(self) -> str:
        return b64url(self.raw_id)

    def cose_public_key(self) -> bytes:
        """CBOR {1: 2 (EC2), 3: -7 (ES256), -1: 1 (P-256), -2: x, -3: y}, encoded by hand."""
        numbers = self.key.public_key().public_numbers()
        x, y = numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")
        return (
            bytes([0xA5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20])
            + x
            + bytes([0x22, 0x58, 0x20])
            + y
        )

    def assertion(self, challenge: bytes) -> dict[str, Any]:
        """The answer to navigator.credentials.get() for `challenge`, as the browser's JSON."""
        self.sign_count += 1
        client_data = json.dumps(
            {
                "type": "webauthn.get",
                "challenge": b64url(challenge),
                "origin": self.origin,
                "crossOrigin": False,
            }
        ).encode()
        authenticator_data = (
            hashlib.sha256(self.rp_id.encode()).digest()
            + bytes([USER_PRESENT | USER_VERIFIED])
            + self.sign_count.to_bytes(4, "big")
        )
        signature = self.key.sign(
            authenticator_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "response": {
                "authenticatorData": b64url(authenticator_data),
                "clientDataJSON": b64url(client_data),
                "signature": b64url(signature),
            },
        }
