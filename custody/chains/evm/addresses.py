"""EVM addresses from secp256k1 public keys, as the HSM hands them over."""

from __future__ import annotations

from coincurve import PublicKey
from eth_utils.crypto import keccak

from custody.chains.errors import InvalidPayload
from custody.chains.values import EvmAddress

_UNCOMPRESSED_LENGTH = 65
_UNCOMPRESSED_PREFIX = 0x04


def address_from_public_key(public_key: bytes) -> EvmAddress:
    """The address of a 65-byte uncompressed SEC1 point: the last 20 bytes of keccak(X || Y)."""
    if not isinstance(public_key, bytes):
        raise InvalidPayload("public key must be bytes")
    # PKCS#11 returns CKA_EC_POINT wrapped in a DER OCTET STRING (04 41 04 …); name that mistake
    # instead of deriving an address from the wrong 64 bytes.
    if len(public_key) == 67 and public_key[:3] == b"\x04\x41\x04":
        raise InvalidPayload("public key is still DER-wrapped (CKA_EC_POINT); unwrap it first")
    if len(public_key) != _UNCOMPRESSED_LENGTH or public_key[0] != _UNCOMPRESSED_PREFIX:
        raise InvalidPayload(
            f"public key must be a 65-byte uncompressed SEC1 point (04 || X || Y), "
            f"got {len(public_key)} bytes"
        )
    # Deriving an address from bytes that are not a curve point would yield an account nobody
    # can ever sign for: funds sent there are lost.
    try:
        PublicKey(public_key)
    except ValueError as error:
        raise InvalidPayload("public key is not a point on secp256k1") from error
    return EvmAddress(keccak(public_key[1:])[-20:])
