"""Turn a token's raw ECDSA output into the signature Ethereum and Bitcoin accept.

A PKCS#11 token returns r || s and knows nothing of low-s or recovery ids; both are fixed here,
in software, and the recovery step doubles as a verification of what the token produced.
"""

from __future__ import annotations

from dataclasses import dataclass

import coincurve

from custody import secp256k1
from custody.hsm.errors import HsmSignatureInvalid, InvalidHsmRequest


@dataclass(frozen=True)
class EcdsaSignature:
    """A low-s secp256k1 signature with the recovery id (0 or 1) that yields the signer's key."""

    r: int
    s: int
    recovery_id: int

    def __post_init__(self) -> None:
        if not secp256k1.in_range(self.r):
            raise HsmSignatureInvalid("ECDSA signature has r out of range")
        # High-s signatures are malleable and rejected by Ethereum (EIP-2) and Bitcoin policy.
        if not secp256k1.is_low_s(self.s):
            raise HsmSignatureInvalid("ECDSA signature is not in low-s form")
        if self.recovery_id not in (0, 1):
            raise HsmSignatureInvalid("ECDSA recovery id must be 0 or 1")

    def to_bytes65(self) -> bytes:
        """r || s || v with v the recovery id (0/1), the layout coincurve and eth-keys read."""
        return self.r.to_bytes(32, "big") + self.s.to_bytes(32, "big") + bytes([self.recovery_id])


def normalise(raw_rs: bytes, digest: bytes, public_key: bytes) -> EcdsaSignature:
    """Low-s form and recovery id for a token's r || s over `digest` by the 65-byte `public_key`.

    Fails closed: if no recovery id gives back `public_key`, the token signed with another key or
    returned garbage, and no signature leaves this function.
    """
    if len(raw_rs) != 64:
        raise HsmSignatureInvalid(
            f"token returned a {len(raw_rs)}-byte ECDSA signature, expected 64 (r||s)"
        )
    if len(digest) != 32:
        raise InvalidHsmRequest(f"ECDSA digest must be 32 bytes, got {len(digest)}")
    r = int.from_bytes(raw_rs[:32], "big")
    s = int.from_bytes(raw_rs[32:], "big")
    if not (secp256k1.in_range(r) and secp256k1.in_range(s)):
        raise HsmSignatureInvalid("token returned an ECDSA signature with r or s out of range")
    s = secp256k1.low_s(s)
    compact = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    # Ids 2 and 3 arise only when R's x-coordinate exceeds n (odds about 2^-128): fail closed.
    for recovery_id in (0, 1):
        if _recovers_to(compact + bytes([recovery_id]), digest, public_key):
            return EcdsaSignature(r=r, s=s, recovery_id=recovery_id)
    raise HsmSignatureInvalid(
        "token's ECDSA signature does not verify against the key's public key"
    )


def _recovers_to(signature65: bytes, digest: bytes, public_key: bytes) -> bool:
    try:
        recovered = coincurve.PublicKey.from_signature_and_message(signature65, digest, hasher=None)
    except ValueError:
        return False
    return recovered.format(compressed=False) == public_key
