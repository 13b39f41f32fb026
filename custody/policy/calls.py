"""Contract-call terms: method selectors and the flags that mark dangerous calls.

`methods` accepts a 4-byte selector (`0xa9059cbb`) or a canonical ABI signature
(`transfer(address,uint256)`); both become the selector, because the selector is all the
calldata carries. Signatures must be canonical (no spaces, `uint256` not `uint`): a sloppy
spelling hashes to a different selector and would silently match nothing.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from eth_utils.crypto import keccak
from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

from custody.chains.values import EvmAddress
from custody.policy.model import non_empty


class CallFlag(StrEnum):
    """Set by the decoder; a request carrying one is denied unless the rule allows it by name."""

    DELEGATECALL = "delegatecall"
    UNKNOWN_METHOD = "unknown_method"
    UNLIMITED_APPROVAL = "unlimited_approval"
    SELF_CALL = "self_call"
    """A Safe wallet calling itself: owner, threshold, module or guard changes."""


ALLOW_KEYS: dict[str, CallFlag] = {f"allow_{flag.value}": flag for flag in CallFlag}
"""Match keys that let a rule's allow or approval action apply to flagged requests."""

_SELECTOR = re.compile(r"0x[0-9a-fA-F]{8}")
# Sizes of at most three digits (int256, bytes32): longer ones are never canonical, and int() of
# unbounded text is slow and fails past 4,300 digits.
_ATOM = re.compile(r"address|bool|string|bytes([0-9]{0,3})|u?int([0-9]{1,3})")
_ARRAYS = re.compile(r"(?:\[[0-9]*\])*")
_SIGNATURE = re.compile(r"([A-Za-z_$][A-Za-z0-9_$]*)\((.*)\)")


def selector_of(signature: str) -> str:
    return "0x" + keccak(text=signature)[:4].hex()


def parse_method(value: object) -> str:
    if isinstance(value, str) and _SELECTOR.fullmatch(value):
        return value.lower()
    match = _SIGNATURE.fullmatch(value) if isinstance(value, str) else None
    if match is None or not _canonical_types(match[2]):
        raise PydanticCustomError(
            "not_method",
            "not a selector (0x and 8 hex digits) or canonical signature like"
            " transfer(address,uint256)",
        )
    return selector_of(match[0])


def _canonical_types(types: str) -> bool:
    return types == "" or all(_canonical_type(part) for part in _split_top(types))


def _canonical_type(text: str) -> bool:
    if text.startswith("("):
        end = _closing(text)
        return _ARRAYS.fullmatch(text[end + 1 :]) is not None and _canonical_types(text[1:end])
    base = text.split("[", 1)[0]
    atom = _ATOM.fullmatch(base)
    if atom is None or not _ARRAYS.fullmatch(text[len(base) :]):
        return False
    size, bits = atom[1], atom[2]
    if size is not None and size != "":
        return not size.startswith("0") and 1 <= int(size) <= 32
    return bits is None or (
        not bits.startswith("0") and int(bits) % 8 == 0 and 8 <= int(bits) <= 256
    )


def _closing(text: str) -> int:
    depth = 0
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return index
    return len(text)


def _split_top(types: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for index, char in enumerate(types):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(types[start:index])
            start = index + 1
    parts.append(types[start:])
    return parts


def _only_true(value: object) -> object:
    # `allow_delegatecall: false` would read like a guard but guard nothing: leave the key out.
    if value is not True:
        raise PydanticCustomError("only_true", "can only be true (leave the key out otherwise)")
    return value


Selector = Annotated[str, BeforeValidator(parse_method)]
Methods = Annotated[tuple[Selector, ...], AfterValidator(non_empty)]
Contracts = Annotated[tuple[EvmAddress, ...], AfterValidator(non_empty)]
AllowFlag = Annotated[bool, BeforeValidator(_only_true)]
