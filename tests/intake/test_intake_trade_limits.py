"""Hostile typed data through the API (issue 9 §2): refused by the caps with a 422 problem.

A 55 KB trade body cost 8.7 s of CPU while the request held the write lock. Each body here fits
the 64 KiB body limit and is refused by the cap check itself, which the problem's detail names:
the proof that no hashing ran. (Time is never asserted; `bench/` measures speed.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.intake.trade_support import trade, venue
from tests.support.api import Api
from tests.support.installation import Installation, WalletInfo

BODY_LIMIT = 64 * 1024


def fields(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"name": name, "type": kind} for name, kind in pairs]


def typed(contract: str, types: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    domain = {"name": "Venue", "version": "1", "chainId": 1, "verifyingContract": contract}
    return {"types": types, "primaryType": "Order", "domain": domain, "message": message}


def type_chain(contract: str) -> dict[str, Any]:
    """The shape of the issue's body: 500 chained types and 3,000 values that each re-spell them."""
    types = {f"T{i}": fields(("n", f"T{i + 1}[]")) for i in range(500)}
    types["T500"] = []
    types["Item"] = fields(("c", "T0[]"))
    types["Order"] = fields(("items", "Item[]"))
    return typed(contract, types, {"items": [{"c": []}] * 3000})


def deep(contract: str) -> dict[str, Any]:
    types = {"Order": fields(("n", "uint8[][][][][][][][][][][][][][][][][][][][]"))}
    value: Any = [1]
    for _ in range(19):
        value = [value]
    return typed(contract, types, {"n": value})


def huge_array(contract: str) -> dict[str, Any]:
    return typed(contract, {"Order": fields(("n", "uint8[]"))}, {"n": [1] * 20_000})


@pytest.mark.parametrize(
    ("build", "detail"),
    [
        pytest.param(type_chain, "typed data declares 503 types; at most 32", id="many-types"),
        pytest.param(deep, "typed data message nests deeper than 8 levels", id="deep-nesting"),
        pytest.param(huge_array, "has 20000 items; at most 256", id="huge-array"),
    ],
)
def test_hostile_typed_data_is_refused_by_the_caps(
    api: Api, wallet: WalletInfo, installation: Installation, build: Any, detail: str
) -> None:
    name, contract = venue(installation)
    body = json.dumps(trade(wallet.name, name, build(contract))).encode()
    assert len(body) < BODY_LIMIT
    before = installation.counts()
    response = api.create(body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert detail in problem["detail"]
    assert problem["type"].endswith("/typed-data-too-large")
    assert installation.counts() == before
