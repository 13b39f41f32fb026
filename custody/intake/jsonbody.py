"""Strict JSON: no floats, no NaN, no duplicate keys. Ambiguity in what was asked is refused."""

from __future__ import annotations

import json
from typing import Any

from custody.intake.errors import InvalidBody


def _no_float(text: str) -> Any:
    raise InvalidBody(
        f"number {text[:24]} has a fraction or exponent: amounts are decimal strings of base units"
    )


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
            text, parse_float=_no_float, parse_constant=_no_constant, object_pairs_hook=_unique_keys
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
