"""Test-only signing with software keys; production signs through the HSM.

Named uniquely (not helpers.py) because tests/ has no packages: modules share one namespace.
"""

from __future__ import annotations

from coincurve import PrivateKey

from custody.chains import Digest, EvmAddress, address_from_public_key

# The well-known example key of the eth-account documentation; never holds funds anywhere real.
KEY_HEX = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
KEY = PrivateKey(bytes.fromhex(KEY_HEX))
OTHER_KEY = PrivateKey(bytes.fromhex("11" * 32))


def address_of(key: PrivateKey) -> EvmAddress:
    return address_from_public_key(key.public_key.format(compressed=False))


def sign(key: PrivateKey, digest: Digest) -> tuple[int, int, int]:
    """(r, s, recovery_id) over the digest itself (hasher=None), as an HSM would sign it."""
    signature = key.sign_recoverable(digest.value, hasher=None)
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    return r, s, signature[64]
