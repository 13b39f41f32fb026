"""Key algorithms, public key descriptions and the parsing of what a token reports about a key."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

import coincurve

from custody.hsm.errors import HsmError, InvalidHsmRequest


class Algorithm(StrEnum):
    SECP256K1 = "secp256k1"
    ED25519 = "ed25519"


class Backup(StrEnum):
    """How a private key may leave its token (invariant 7): never, or only wrapped under a
    trusted key-encryption key during a recorded backup ceremony (docs/ceremonies.md)."""

    NONE = "none"  # CKA_EXTRACTABLE=false
    TRUSTED_WRAP = "trusted-wrap"  # CKA_EXTRACTABLE=true and CKA_WRAP_WITH_TRUSTED=true


# What custody can back up. SoftHSM 2.6.1 will not wrap an Ed25519 private key under any KEK
# (CKR_KEY_NOT_WRAPPABLE), so Ed25519 keys are always made non-extractable.
BACKUP_ALGORITHMS = frozenset({Algorithm.SECP256K1})


# DER-encoded curve identifiers for CKA_EC_PARAMS.
SECP256K1_OID = bytes.fromhex("06052b8104000a")  # 1.3.132.0.10
ED25519_OID = bytes.fromhex("06032b6570")  # 1.3.101.112
# PKCS#11 3.0 also allows naming the curve as a PrintableString; some tokens report it that way.
ED25519_PRINTABLE = b"\x13\x0cedwards25519"

PUBLIC_KEY_LENGTHS = {Algorithm.SECP256K1: 65, Algorithm.ED25519: 32}

_LABEL = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def validate_label(label: str) -> str:
    """Key labels are short, lowercase and shell-safe, so they read the same in CLI, logs and UI."""
    if not _LABEL.fullmatch(label):
        raise InvalidHsmRequest(
            f"invalid key label {label!r}: use 1-64 characters from a-z, 0-9, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return label


@dataclass(frozen=True)
class KeyInfo:
    """A key pair on the token, described by what may leave it: its public half.

    `public_key` is the 65-byte uncompressed SEC1 point (0x04 || X || Y) for secp256k1 and the
    raw 32 bytes for Ed25519; `key_id` is CKA_ID in hex.
    """

    label: str
    algorithm: Algorithm
    key_id: str
    public_key: bytes

    def __post_init__(self) -> None:
        expected = PUBLIC_KEY_LENGTHS[self.algorithm]
        if len(self.public_key) != expected:
            raise HsmError(
                f"public key of {self.label!r} is {len(self.public_key)} bytes, "
                f"expected {expected} for {self.algorithm}"
            )


@dataclass(frozen=True)
class WrappedKey:
    """A private key wrapped under a ceremony's KEK (CKM_AES_KEY_WRAP_PAD over its PKCS#8
    form), with the public description it had on its token."""

    info: KeyInfo
    blob: bytes

    def __repr__(self) -> str:  # a blob is harmless without the KEK, but never needs printing
        return f"WrappedKey(label={self.info.label!r}, {len(self.blob)} bytes)"


def algorithm_from_ec_params(ec_params: bytes) -> Algorithm | None:
    """The algorithm a CKA_EC_PARAMS value names, or None for curves custody does not use."""
    if ec_params == SECP256K1_OID:
        return Algorithm.SECP256K1
    if ec_params in (ED25519_OID, ED25519_PRINTABLE):
        return Algorithm.ED25519
    return None


def public_key_from_ec_point(algorithm: Algorithm, ec_point: bytes) -> bytes:
    """Unwrap CKA_EC_POINT into custody's public key bytes, checking the point is well formed.

    The standard says CKA_EC_POINT is a DER OCTET STRING (`04 41 04..` for secp256k1, `04 20 ..`
    for Ed25519); some tokens return the bare point instead. The two forms cannot be confused: a
    bare point is too short to be a DER wrapping of a point of the expected length.
    """
    expected = PUBLIC_KEY_LENGTHS[algorithm]
    inner = _der_octet_string(ec_point)
    if inner is not None and len(inner) == expected:
        point = inner
    elif len(ec_point) == expected:
        point = ec_point
    else:
        raise HsmError(f"token returned a malformed {algorithm} public key ({len(ec_point)} bytes)")
    if algorithm is Algorithm.SECP256K1:
        _check_secp256k1_point(point)
    return point


def _check_secp256k1_point(point: bytes) -> None:
    if point[0] != 0x04:
        raise HsmError("token returned a secp256k1 public key that is not an uncompressed point")
    try:
        coincurve.PublicKey(point)
    except ValueError as exc:
        raise HsmError("token returned a secp256k1 public key that is not on the curve") from exc


def _der_octet_string(data: bytes) -> bytes | None:
    """The content of a DER OCTET STRING that spans all of `data`, or None if it is not one."""
    if len(data) < 2 or data[0] != 0x04:
        return None
    first = data[1]
    if first < 0x80:
        length, start = first, 2
    elif first in (0x81, 0x82):
        size = first - 0x80
        if len(data) < 2 + size:
            return None
        length, start = int.from_bytes(data[2 : 2 + size], "big"), 2 + size
    else:
        return None
    if start + length != len(data):
        return None
    return data[start:]
