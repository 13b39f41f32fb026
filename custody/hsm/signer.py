"""What the rest of custody needs from a key store: sign, and say which public key signs."""

from __future__ import annotations

from typing import Protocol

from custody.hsm.ecdsa import EcdsaSignature
from custody.hsm.keys import KeyInfo


class Signer(Protocol):
    def get_key(self, label: str) -> KeyInfo:
        """The public description of the key `label`; raises KeyNotFound."""
        ...

    def sign_secp256k1(self, label: str, digest: bytes) -> EcdsaSignature:
        """A low-s, recoverable signature over a 32-byte digest (never hashed again)."""
        ...

    def sign_ed25519(self, label: str, message: bytes) -> bytes:
        """A 64-byte pure Ed25519 signature over `message`."""
        ...
