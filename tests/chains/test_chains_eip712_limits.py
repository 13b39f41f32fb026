"""Caps on typed data: each refused with its own message, before any hashing; at a cap, accepted.

The refusals name the cap they hit, which is how these tests know the cheap check refused them
(not the hashing after it): no test here measures time.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from custody.chains import InvalidPayload
from custody.chains.evm.eip712 import canonical_typed_data
from custody.chains.evm.typed_limits import (
    MAX_ARRAY_LENGTH,
    MAX_DEPTH,
    MAX_ENCODED_BYTES,
    MAX_FIELDS,
    MAX_TYPES,
    MAX_VALUES,
    TypedDataTooLarge,
)

DOMAIN = {
    "name": "Venue",
    "version": "1",
    "chainId": 1,
    "verifyingContract": "0x9008D19f58AAbD9eD0D60971565AA8510560ab41",
}


def typed(types: dict[str, list[dict[str, str]]], message: dict[str, Any]) -> dict[str, Any]:
    return {"types": types, "primaryType": "Order", "domain": DOMAIN, "message": message}


def fields(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "type": kind} for name, kind in pairs]


def type_chain(length: int, items: int) -> dict[str, Any]:
    """The attack of issue 9: a long chain of types, and many small values that each make the
    hashing spell out the whole chain again."""
    types = {f"T{i}": fields(("next", f"T{i + 1}[]")) for i in range(length)}
    types[f"T{length}"] = []
    types["Item"] = fields(("chain", "T0[]"))
    types["Order"] = fields(("items", "Item[]"))
    return typed(types, {"items": [{"chain": []}] * items})


def nested(depth: int) -> dict[str, Any]:
    """Order{inner: N1{inner: N2{...}}}: `depth` objects, the message included."""
    types = {"Order": fields(("inner", "N1"))}
    types |= {f"N{i}": fields(("inner", f"N{i + 1}")) for i in range(1, depth - 1)}
    types[f"N{depth - 1}"] = fields(("value", "uint8"))
    message: dict[str, Any] = {"value": 1}
    for _ in range(depth - 1):
        message = {"inner": message}
    return typed(types, message)


def array(length: int) -> dict[str, Any]:
    return typed({"Order": fields(("amounts", "uint8[]"))}, {"amounts": [1] * length})


def many_types(count: int) -> dict[str, Any]:
    types = {f"T{i}": fields(("value", "uint8")) for i in range(count - 1)}
    types["Order"] = fields(("value", "uint8"))
    return typed(types, {"value": 1})


def wide(count: int) -> dict[str, Any]:
    names = [f"f{i}" for i in range(count)]
    return typed({"Order": fields(*((n, "bool") for n in names))}, dict.fromkeys(names, True))


def many_values(arrays: int) -> dict[str, Any]:
    names = [f"a{i}" for i in range(arrays)]
    return typed(
        {"Order": fields(*((n, "uint8[]") for n in names))},
        {n: [0] * MAX_ARRAY_LENGTH for n in names},
    )


def costly_types(items: int) -> dict[str, Any]:
    """Within every count cap, but each item makes the hashing read ~30 KB of type encoding."""
    long = "x" * 60
    types = {
        f"T{i}": fields(*((f"{long}{j}", f"T{i + 1}[]") for j in range(16))) for i in range(30)
    }
    types["T30"] = []
    types["Order"] = fields(("items", "T29[]"), ("head", "T0[]"))
    item: dict[str, Any] = {f"{long}{j}": [] for j in range(16)}
    return typed(types, {"items": [item] * items, "head": [item] * items})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(type_chain(500, 3000), "declares 503 types; at most 32", id="issue-9-body"),
        pytest.param(many_types(MAX_TYPES + 1), "declares 33 types; at most 32", id="types"),
        pytest.param(wide(MAX_FIELDS + 1), "'Order' has 65 fields; at most 64", id="fields"),
        pytest.param(nested(MAX_DEPTH + 1), "message nests deeper than 8 levels", id="depth"),
        pytest.param(array(MAX_ARRAY_LENGTH + 1), "has 257 items; at most 256", id="array"),
        pytest.param(array(60_000), "has 60000 items; at most 256", id="huge-array"),
        pytest.param(many_values(4), f"more than {MAX_VALUES} values", id="values"),
        pytest.param(
            costly_types(8), f"would read more than {MAX_ENCODED_BYTES} bytes", id="hashing-budget"
        ),
    ],
)
def test_typed_data_past_a_cap_is_refused_by_that_cap(data: dict[str, Any], message: str) -> None:
    with pytest.raises(TypedDataTooLarge, match=message) as refused:
        canonical_typed_data(data)
    assert refused.value.status == 422


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(many_types(MAX_TYPES), id="types"),
        pytest.param(wide(MAX_FIELDS), id="fields"),
        pytest.param(nested(MAX_DEPTH), id="depth"),
        pytest.param(array(MAX_ARRAY_LENGTH), id="array"),
        pytest.param(many_values(3), id="values"),
        pytest.param(type_chain(28, 200), id="short-chain"),
        pytest.param(costly_types(2), id="hashing-budget"),
    ],
)
def test_typed_data_at_the_caps_is_accepted(data: dict[str, Any]) -> None:
    canonical, _ = canonical_typed_data(data)
    assert canonical["message"].keys() == data["message"].keys()


def test_the_issue_9_body_fits_the_http_body_limit() -> None:
    """The refused bodies are what a client can send: under the 64 KiB body limit."""
    for data in (type_chain(500, 3000), nested(40), array(20_000), many_types(700)):
        assert len(json.dumps(data, separators=(",", ":"))) < 64 * 1024


@pytest.mark.parametrize(
    ("types", "message", "detail"),
    [
        pytest.param(
            {"Order": fields(("a", "uint256"))} | {"uint256": []},
            {"a": 1},
            "type name uint256 is an atomic type's name",
            id="struct-named-like-an-atom",
        ),
        pytest.param(
            {"Order": fields(("a", "Missing[]"))},
            {"a": []},
            "types.Order.a: unknown type Missing",
            id="undeclared-type-in-an-empty-array",
        ),
        pytest.param(
            {"Order": fields(("a", "uint8[300]"))},
            {"a": []},
            "uint8\\[300\\] is longer than 256 items",
            id="fixed-array-past-the-cap",
        ),
        pytest.param(
            {"Order": fields(("a", "uint8[0]"))},
            {"a": []},
            "array of no items",
            id="zero-length-array",
        ),
        pytest.param(
            {"Order": fields(("a", "string"))},
            {"a": "\ud800"},
            "message.a is not valid Unicode text",
            id="lone-surrogate",
        ),
        pytest.param(
            {"Order": fields(("a", "uint256"))},
            {"a": "0x1" + "0" * 64},
            "message.a does not fit uint256",
            id="hex-past-256-bits",
        ),
    ],
)
def test_types_and_values_no_implementation_agrees_on_are_refused(
    types: dict[str, list[dict[str, str]]], message: dict[str, Any], detail: str
) -> None:
    with pytest.raises(InvalidPayload, match=detail):
        canonical_typed_data(typed(types, message))
