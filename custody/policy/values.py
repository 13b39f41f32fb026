"""The scalar values a policy file is made of, validated where they are read.

Every check runs *before* pydantic's own coercion: YAML turns `1e18` into a float, `0x10` into an
int and `no` into False, and a lax coercion would quietly give such values a meaning the author did
not write. Messages are short and lower-case because the loader prefixes them with file, line and
path.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from eth_utils.address import is_checksum_address, to_checksum_address
from pydantic import BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

# 2**256 - 1 is the largest amount any supported chain can carry; bigger numbers are typos.
MAX_AMOUNT = 2**256 - 1

_DIGITS = re.compile(r"[0-9]+")  # not \d: that also accepts non-ASCII digits
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_GLOB = re.compile(r"[A-Za-z0-9._*?\[\]!-]{1,64}")
_DURATION = re.compile(r"([1-9][0-9]{0,6})([smhd])")
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
_EVM_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class RequestType(StrEnum):
    CONTRACT_CALL = "contract_call"
    SIGN_MESSAGE = "sign_message"
    TRADE = "trade"
    WITHDRAWAL = "withdrawal"


def _fail(code: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(code, message)


def parse_amount(value: object) -> int:
    if not isinstance(value, str) or not _DIGITS.fullmatch(value):
        raise _fail("not_integer_string", "not an integer string")
    if len(value) > 1 and value.startswith("0"):
        # "010" reads as octal to some people and as ten to others.
        raise _fail("leading_zero", "an integer string must not start with 0")
    # Length first: int() of a huge string is slow and refuses more than 4300 digits.
    amount = int(value) if len(value) <= len(str(MAX_AMOUNT)) else MAX_AMOUNT + 1
    if amount > MAX_AMOUNT:
        raise _fail("amount_too_large", "larger than 2**256 - 1")
    return amount


def parse_duration(value: object) -> int:
    """`30s`, `15m`, `24h`, `7d` to seconds; a bare number is refused: its unit would be a guess."""
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise _fail("not_duration", "not a duration like 30m, 24h or 7d")
    return int(match[1]) * _UNIT_SECONDS[match[2]]


def format_duration(seconds: int) -> str:
    """The canonical spelling, so `24h` and `1d` digest the same."""
    for unit, size in _UNIT_SECONDS.items():
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: every duration is a whole number of seconds")


def parse_name(value: object) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise _fail("not_name", "not a name (letters, digits, '.', '_', '-'; at most 64)")
    return value


def parse_glob(value: object) -> str:
    if not isinstance(value, str) or not _GLOB.fullmatch(value):
        raise _fail("not_glob", "not a name or glob (letters, digits, '.', '_', '-', '*?[]!')")
    return value


def parse_address(value: object) -> str:
    """An EVM address in its EIP-55 form; a mixed-case address must already carry a valid checksum.

    All-lower and all-upper hex carry no checksum and are accepted as such; mixed case claims one,
    and a wrong one means a mistyped character.
    """
    if not isinstance(value, str) or not _EVM_ADDRESS.fullmatch(value):
        raise _fail("not_address", "not an address (0x and 40 hex digits)")
    digits = value[2:]
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(value):
        raise _fail("bad_checksum", "mixed-case address with an invalid EIP-55 checksum")
    return str(to_checksum_address(value))


def _to_str(value: int) -> str:
    return str(value)


Amount = Annotated[int, BeforeValidator(parse_amount), PlainSerializer(_to_str, return_type=str)]
"""Base units as a decimal string in the file, an int in the model."""

DurationSeconds = Annotated[
    int, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
Name = Annotated[str, BeforeValidator(parse_name)]
Glob = Annotated[str, BeforeValidator(parse_glob)]
Address = Annotated[str, BeforeValidator(parse_address)]
