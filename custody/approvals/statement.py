"""The approval statement: what an approver's key (or passkey) signs.

RFC 8785 canonical JSON of {"type": "custody.approval.v1", "request_id", "payload_digest",
"decision", "approver"} exactly as DESIGN.md fixes it. A device key signs these bytes with Ed25519;
a WebAuthn approval uses SHA-256 of these bytes as its challenge. Either way the approval names the
payload digest, so it cannot be moved to another payload (invariant 1).
"""

from __future__ import annotations

import hashlib

import rfc8785

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


def webauthn_challenge(statement: bytes) -> bytes:
    return hashlib.sha256(statement).digest()
