"""The approval statement: what an approver's key (or passkey) signs.

RFC 8785 canonical JSON of {"type": "custody.approval.v1", "request_id", "payload_digest",
"decision", "approver"} exactly as DESIGN.md fixes it. A device key signs these bytes with Ed25519;
a WebAuthn approval uses SHA-256 of these bytes as its challenge. Either way the approval names the
payload digest, so it cannot be moved to another payload (invariant 1).
"""

from __future__ import annotations

import base64
import binascii
import hashlib

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

STATEMENT_TYPE = "custody.approval.v1"
DECISIONS = ("approve", "reject")


def statement_bytes(*, request_id: str, payload_digest: str, decision: str, approver: str) -> bytes:
    if decision not in DECISIONS:
        raise ValueError(f"decision must be approve or reject, got {decision!r}")
    return bytes(
        rfc8785.dumps(
            {
                "type": STATEMENT_TYPE,
                "request_id": request_id,
                "payload_digest": payload_digest,
                "decision": decision,
                "approver": approver,
            }
        )
    )


def verify_device_signature(public_key_hex: str, signature: str, statement: bytes) -> bool:
    """Whether `signature` (base64 Ed25519) by the device key signs exactly `statement`."""
    try:
        raw = base64.b64decode(signature, validate=True)
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex)).verify(raw, statement)
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def webauthn_challenge(statement: bytes) -> bytes:
    return hashlib.sha256(statement).digest()
