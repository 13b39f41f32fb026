"""Small frozen value types, each validated where it is built.

Amounts cross the API as decimal strings of base units: JSON numbers lose precision beyond 2**53
and floats cannot say "exactly one wei", so anything that is not a string of ASCII digits is refused
rather than coerced.

`Amount` and `EvmAddress` are the only amount and address types from intake through policy to the
signer. They are built two ways with one rule: `parse` for API bodies and payloads (an
`InvalidPayload` naming the field), and as pydantic field types for policy and case files (short
lower-case messages that the policy loader prefixes with file, line and path).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from eth_utils.address import is_checksum_address, to_checksum_address
from eth_utils.crypto import keccak
from pydantic import GetCoreSchemaHandler
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from custody.chains.errors import InvalidPayload

# [0-9] rather than \d or str.isdigit(): both accept non-ASCII digits (Arabic-Indic, full-width)
# that int() would happily parse, and int() also accepts "1_000", " 1" and "+1".
_DIGITS = re.compile(r"[0-9]+")
_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_AMOUNT_PATTERN = r"^(0|[1-9][0-9]*)$"
_ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
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


class UintFault(Enum):
    """Why a text is not a canonical unsigned decimal; each audience words it its own way."""

    NOT_TEXT = "not_text"
    NOT_DIGITS = "not_digits"
    LEADING_ZERO = "leading_zero"
    TOO_MANY_DIGITS = "too_many_digits"
    TOO_LARGE = "too_large"


def read_uint(text: object, *, bits: int = 256) -> int | UintFault:
    """The one reading of a canonical decimal string (ASCII digits, no leading zeros) below
    ``2**bits``: API bodies, payloads and policy files all accept exactly the same spellings."""
    if not isinstance(text, str):
        return UintFault.NOT_TEXT
    if not _DIGITS.fullmatch(text):
        return UintFault.NOT_DIGITS
    # Leading zeros are refused so that one number has one spelling in payloads and the ledger.
    if len(text) > 1 and text[0] == "0":
        return UintFault.LEADING_ZERO
    # Checked on length first: int() of a huge string is slow and hits Python's digit limit.
    if len(text) > len(str(2**bits)):
        return UintFault.TOO_MANY_DIGITS
    number = int(text)
    return UintFault.TOO_LARGE if number >= 2**bits else number


def parse_uint(
    text: object, *, what: str, bits: int = 256, expected: str = "a decimal string of base units"
) -> int:
    """`read_uint`, worded for a JSON client: which field, and what was wrong with it."""
    number = read_uint(text, bits=bits)
    if not isinstance(number, UintFault):
        return number
    shown = describe(text)
    messages = {
        UintFault.NOT_TEXT: f"{what} must be {expected}, got {shown}",
        UintFault.NOT_DIGITS: f"{what} must be a decimal string of digits only "
        f"(no sign, dot, exponent or spaces), got {shown}",
        UintFault.LEADING_ZERO: f"{what} must not have leading zeros, got {shown}",
        UintFault.TOO_MANY_DIGITS: f"{what} is too large "
        f"({len(str(text))} digits, must be below 2**{bits})",
        UintFault.TOO_LARGE: f"{what} is too large (must be below 2**{bits})",
    }
    raise InvalidPayload(messages[number])


def check_uint(value: object, *, what: str, bits: int = 256) -> int:
    """Check an in-process integer; bools are ints to Python but never amounts to us."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidPayload(f"{what} must be an integer, got {describe(value)}")
    if value < 0:
        raise InvalidPayload(f"{what} must not be negative, got {value}")
    if value >= 2**bits:
        raise InvalidPayload(f"{what} is too large (must be below 2**{bits})")
    return value


def _file_value_schema(build: Callable[[object], object], pattern: str) -> CoreSchema:
    """A pydantic schema that builds a value type from its text and writes it back as text."""
    return core_schema.no_info_plain_validator_function(
        build,
        json_schema_input_schema=core_schema.str_schema(pattern=pattern),
        serialization=core_schema.plain_serializer_function_ser_schema(
            str, return_schema=core_schema.str_schema()
        ),
    )


# Config-file wording: the loader says where, so the message only says what.
_AMOUNT_FILE_ERRORS = {
    UintFault.NOT_TEXT: ("not_integer_string", "not an integer string"),
    UintFault.NOT_DIGITS: ("not_integer_string", "not an integer string"),
    UintFault.LEADING_ZERO: ("leading_zero", "an integer string must not start with 0"),
    UintFault.TOO_MANY_DIGITS: ("amount_too_large", "larger than 2**256 - 1"),
    UintFault.TOO_LARGE: ("amount_too_large", "larger than 2**256 - 1"),
}


@dataclass(frozen=True, slots=True, order=True)
class Amount:
    """A non-negative number of base units (wei for ETH), below 2**256.

    Ordered, so policy bounds compare amounts directly; never ordered against a bare int.
    """

    value: int

    def __post_init__(self) -> None:
        check_uint(self.value, what="amount", bits=256)

    @classmethod
    def parse(cls, text: object, *, positive: bool = False, what: str = "amount") -> Amount:
        number = parse_uint(text, what=what, bits=256)
        if positive and number == 0:
            raise InvalidPayload(f"{what} must be greater than zero")
        return cls(number)

    @classmethod
    def _from_file(cls, text: object) -> Amount:
        if isinstance(text, Amount):
            return text
        number = read_uint(text, bits=256)
        if isinstance(number, UintFault):
            raise PydanticCustomError(*_AMOUNT_FILE_ERRORS[number])
        return cls(number)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return _file_value_schema(cls._from_file, _AMOUNT_PATTERN)

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
        read = _read_address(text)
        if read is _AddressFault.NOT_HEX:
            raise InvalidPayload(
                f"{what} must be 0x followed by 40 hex digits, got {describe(text)}"
            )
        if read is _AddressFault.BAD_CHECKSUM:
            raise InvalidPayload(f"{what} {text} has a wrong EIP-55 checksum")
        return read

    @classmethod
    def _from_file(cls, text: object) -> EvmAddress:
        if isinstance(text, EvmAddress):
            return text
        read = _read_address(text)
        if read is _AddressFault.NOT_HEX:
            raise PydanticCustomError("not_address", "not an address (0x and 40 hex digits)")
        if read is _AddressFault.BAD_CHECKSUM:
            raise PydanticCustomError(
                "bad_checksum", "mixed-case address with an invalid EIP-55 checksum"
            )
        return read

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return _file_value_schema(cls._from_file, _ADDRESS_PATTERN)

    @property
    def checksummed(self) -> str:
        return _checksummed(self.value)

    @property
    def lowercase(self) -> str:
        """The spelling to compare with addresses held as text (EVM addresses ignore case)."""
        return "0x" + self.value.hex()

    def __bytes__(self) -> bytes:
        return self.value

    def __str__(self) -> str:
        return self.checksummed


class _AddressFault(Enum):
    NOT_HEX = "not_hex"
    BAD_CHECKSUM = "bad_checksum"


# The same few addresses (wallets, destinations, contracts) are read and shown several times
# per request, at intake and again in the signer, and the EIP-55 keccak is the dearest part of
# either: both are pure, so each spelling is worked out once per process.
@functools.lru_cache(maxsize=4096)
def _checksummed(value: bytes) -> str:
    return str(to_checksum_address(value))


def _read_address(text: object) -> EvmAddress | _AddressFault:
    if not isinstance(text, str):
        return _AddressFault.NOT_HEX
    return _read_address_text(text)


@functools.lru_cache(maxsize=4096)
def _read_address_text(text: str) -> EvmAddress | _AddressFault:
    if not _HEX_ADDRESS.fullmatch(text):
        return _AddressFault.NOT_HEX
    digits = text[2:]
    # Single-case input carries no checksum to check; mixed case claims one, and a wrong one
    # usually means a mistyped address, which must never be "corrected" into another account.
    single_case = digits.islower() or digits.isupper() or digits.isdigit()
    if not single_case and not is_checksum_address(text):
        return _AddressFault.BAD_CHECKSUM
    return EvmAddress(bytes.fromhex(digits))
