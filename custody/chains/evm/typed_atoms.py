"""EIP-712 atomic values as JSON carries them, read strictly.

256-bit integers arrive as decimal or 0x-hex strings; numbers are accepted only while exact (no
floats, no bools), and nothing is truncated to fit. Addresses in mixed case must carry a valid
EIP-55 checksum.
"""

from __future__ import annotations

import re

from custody.chains.errors import InvalidPayload
from custody.chains.values import EvmAddress

_INT = re.compile(r"(u?)int([0-9]{1,3})")
_FIXED_BYTES = re.compile(r"bytes([0-9]{1,2})")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)")
_HEX = re.compile(r"0x[0-9a-fA-F]*")
_MAX_DIGITS = len(str(2**256))
# 0x and 64 hex digits; more hex than 2**256 has never fits either.
_MAX_HEX_DIGITS = 64


def atomic_value(kind: str, value: object, path: str) -> int | bool | str | bytes:
    if kind == "address":
        return EvmAddress.parse(value, what=path).checksummed
    if kind == "bool":
        if not isinstance(value, bool):
            raise InvalidPayload(f"{path} must be true or false")
        return value
    if kind == "bytes":
        return _hex_bytes(value, path)
    integer = _INT.fullmatch(kind)
    if integer is not None:
        return _integer(kind, integer[1] == "", int(integer[2]), value, path)
    fixed = _FIXED_BYTES.fullmatch(kind)
    if fixed is not None and 1 <= int(fixed[1]) <= 32:
        raw = _hex_bytes(value, path)
        if len(raw) != int(fixed[1]):
            raise InvalidPayload(f"{path} must be exactly {fixed[1]} bytes for {kind}")
        return raw
    raise InvalidPayload(f"{path}: unknown type {kind}")


def _integer(kind: str, signed: bool, bits: int, value: object, path: str) -> int:
    if bits % 8 or not 8 <= bits <= 256:
        raise InvalidPayload(f"{path}: unknown type {kind}")
    number: int
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _DECIMAL.fullmatch(value):
        # More digits than 2**256 has never fit; int() would also refuse past 4,300 digits.
        if len(value.lstrip("-")) > _MAX_DIGITS:
            raise InvalidPayload(f"{path} does not fit {kind}")
        number = int(value)
    elif isinstance(value, str) and _HEX.fullmatch(value) and len(value) > 2:
        if len(value.removeprefix("0x").lstrip("0")) > _MAX_HEX_DIGITS:
            raise InvalidPayload(f"{path} does not fit {kind}")
        number = int(value, 16)
    else:
        raise InvalidPayload(f"{path} must be an integer (number or decimal/0x string) for {kind}")
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1)) if signed else (0, 2**bits)
    if not low <= number < high:
        raise InvalidPayload(f"{path} does not fit {kind}")
    return number


def _hex_bytes(value: object, path: str) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value) or len(value) % 2:
        raise InvalidPayload(f"{path} must be 0x-prefixed hex of whole bytes")
    return bytes.fromhex(value[2:])
