"""The scalar values a policy file is made of, validated where they are read.

Amounts and addresses are `custody.chains.values.Amount` and `EvmAddress`, the types intake and
the signer use too; they bring their own policy-file wording.

Every check runs *before* pydantic's own coercion: YAML turns `1e18` into a float, `0x10` into an
int and `no` into False, and a lax coercion would quietly give such values a meaning the author did
not write. Messages are short and lower-case because the loader prefixes them with file, line and
path.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_GLOB = re.compile(r"[A-Za-z0-9._*?\[\]!-]{1,64}")
_DURATION = re.compile(r"([1-9][0-9]{0,6})([smhd])")
_UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


class RequestType(StrEnum):
    BITCOIN_PSBT = "bitcoin_psbt"
    CONTRACT_CALL = "contract_call"
    SIGN_MESSAGE = "sign_message"
    TRADE = "trade"
    WITHDRAWAL = "withdrawal"


def _fail(code: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(code, message)


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


DurationSeconds = Annotated[
    int, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
Name = Annotated[str, BeforeValidator(parse_name)]
Glob = Annotated[str, BeforeValidator(parse_glob)]
