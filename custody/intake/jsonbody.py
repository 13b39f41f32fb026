"""Strict JSON: no floats, no NaN, no duplicate keys, no integer longer than any field takes.

Ambiguity in what was asked is refused."""

from __future__ import annotations

import json
from typing import Any

from custody.intake.errors import InvalidBody

# No field takes an integer of 2**256 or more, which has 78 digits. Checked before int(): past
# 4,300 digits int() raises a bare ValueError from inside json.loads, and it is slow well before.
MAX_INTEGER_DIGITS = len(str(2**256))


def _no_float(text: str) -> Any:
    raise InvalidBody(
        f"number {text[:24]} has a fraction or exponent: amounts are decimal strings of base units"
    )


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INTEGER_DIGITS:
        raise InvalidBody(
            f"a number has {digits} digits; no field takes more than {MAX_INTEGER_DIGITS} "
            "(amounts are decimal strings of base units)"
        )
    return int(text)


def _no_constant(text: str) -> Any:
    raise InvalidBody(f"{text} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidBody(f"duplicate key {key!r} in JSON object")
        result[key] = value
    return result


def parse_object(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidBody("body must be UTF-8 JSON") from None
    try:
        value = json.loads(
            text,
            parse_float=_no_float,
            parse_int=_bounded_int,
            parse_constant=_no_constant,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise InvalidBody(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InvalidBody("body nests too deeply") from None
    if not isinstance(value, dict):
        raise InvalidBody("body must be a JSON object")
    return value
