"""Small frozen value types, each validated where it is built.

Amounts cross the API as decimal strings of base units: JSON numbers lose precision beyond 2**53
and floats cannot say "exactly one wei", so anything that is not a string of ASCII digits is refused
rather than coerced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from eth_utils.address import is_checksum_address, to_checksum_address
from eth_utils.crypto import keccak

from custody.chains.errors import InvalidPayload

# [0-9] rather than \d or str.isdigit(): both accept non-ASCII digits (Arabic-Indic, full-width)
# that int() would happily parse, and int() also accepts "1_000", " 1" and "+1".
_DIGITS = re.compile(r"[0-9]+")
_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HEX_DIGEST = re.compile(r"(?:0x)?[0-9a-fA-F]{64}")


# Checked in order: bool before int because bool is a subclass of int.
_JSON_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "a boolean"),
    ((int, float), "a number"),
    (type(None), "null"),
    ((list, tuple), "a list"),
    (dict, "an object"),
)


def describe(value: object) -> str:
    """Name a wrong value the way a JSON client would recognise it, without echoing much of it."""
    if isinstance(value, str):
        return repr(value if len(value) <= 24 else value[:24] + "…")
    for kinds, name in _JSON_KINDS:
        if isinstance(value, kinds):
            return name
    return type(value).__name__


def parse_uint(
    text: object, *, what: str, bits: int = 256, expected: str = "a decimal string of base units"
) -> int:
    """Parse a canonical decimal string (ASCII digits, no leading zeros) below ``2**bits``."""
    if not isinstance(text, str):
        raise InvalidPayload(f"{what} must be {expected}, got {describe(text)}")
    if not _DIGITS.fullmatch(text):
        raise InvalidPayload(
            f"{what} must be a decimal string of digits only (no sign, dot, exponent or spaces), "
            f"got {describe(text)}"
        )
    # Leading zeros are refused so that one number has one spelling in payloads and the ledger.
    if len(text) > 1 and text[0] == "0":
        raise InvalidPayload(f"{what} must not have leading zeros, got {describe(text)}")
    # Checked on length first: int() of a huge string is slow and hits Python's digit limit.
    if len(text) > len(str(2**bits)):
        raise InvalidPayload(f"{what} is too large ({len(text)} digits, must be below 2**{bits})")
    number = int(text)
    if number >= 2**bits:
        raise InvalidPayload(f"{what} is too large (must be below 2**{bits})")
    return number


def check_uint(value: object, *, what: str, bits: int = 256) -> int:
    """Check an in-process integer; bools are ints to Python but never amounts to us."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPayload(f"{what} must be an integer, got {describe(value)}")
    if value < 0:
        raise InvalidPayload(f"{what} must not be negative, got {value}")
    if value >= 2**bits:
        raise InvalidPayload(f"{what} is too large (must be below 2**{bits})")
    return value


@dataclass(frozen=True, slots=True)
class Amount:
    """A non-negative number of base units (wei for ETH), below 2**256."""

    value: int

    def __post_init__(self) -> None:
        check_uint(self.value, what="amount", bits=256)

    @classmethod
    def parse(cls, text: object, *, positive: bool = False, what: str = "amount") -> Amount:
        number = parse_uint(text, what=what, bits=256)
        if positive and number == 0:
            raise InvalidPayload(f"{what} must be greater than zero")
        return cls(number)

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True, slots=True)
class ChainId:
    """An EVM chain id (EIP-155): positive and, as EIP-2294 bounds it, below 2**64."""

    value: int

    def __post_init__(self) -> None:
        check_uint(self.value, what="chain id", bits=64)
        if self.value == 0:
            raise InvalidPayload("chain id must be positive")

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True, slots=True)
class Digest:
    """A 32-byte hash: what gets signed and what approvals name."""

    value: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.value, bytes) or len(self.value) != 32:
            raise InvalidPayload("digest must be exactly 32 bytes")

    @classmethod
    def from_hex(cls, text: object) -> Digest:
        if not isinstance(text, str) or not _HEX_DIGEST.fullmatch(text):
            raise InvalidPayload(f"digest must be 64 hex digits, got {describe(text)}")
        return cls(bytes.fromhex(text.removeprefix("0x")))

    @classmethod
    def keccak(cls, data: bytes) -> Digest:
        return cls(keccak(data))

    def hex(self) -> str:
        return self.value.hex()

    def prefixed(self) -> str:
        return "0x" + self.value.hex()

    def __bytes__(self) -> bytes:
        return self.value

    def __str__(self) -> str:
        return self.prefixed()


@dataclass(frozen=True, slots=True)
class EvmAddress:
    """A 20-byte EVM account address; ``str()`` gives its EIP-55 checksummed form."""

    value: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.value, bytes) or len(self.value) != 20:
            raise InvalidPayload("an EVM address must be exactly 20 bytes")

    @classmethod
    def parse(cls, text: object, *, what: str = "address") -> EvmAddress:
        if not isinstance(text, str) or not _HEX_ADDRESS.fullmatch(text):
            raise InvalidPayload(
                f"{what} must be 0x followed by 40 hex digits, got {describe(text)}"
            )
        digits = text[2:]
        # Single-case input carries no checksum to check; mixed case claims one, and a wrong one
        # usually means a mistyped address, which must never be "corrected" into another account.
        single_case = digits.islower() or digits.isupper() or digits.isdigit()
        if not single_case and not is_checksum_address(text):
            raise InvalidPayload(f"{what} {text} has a wrong EIP-55 checksum")
        return cls(bytes.fromhex(digits))

    @property
    def checksummed(self) -> str:
        return str(to_checksum_address(self.value))

    def __bytes__(self) -> bytes:
        return self.value

    def __str__(self) -> str:
        return self.checksummed
