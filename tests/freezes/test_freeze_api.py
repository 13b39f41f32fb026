"""`/v1/freezes`: an operator client freezes in one call; other clients are refused (403)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient as HttpClient

from tests.freezes.conftest import (
    active_freezes,
    freeze_rows,
    statuses,
    submit,
    worker,
)
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation

PROBLEM = "application/problem+json"


def post(api: Api, body: dict[str, Any] | bytes) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return api.call("POST", "/v1/freezes", raw)


def test_an_operator_client_freezes_and_lists(http: HttpClient, home: Installation) -> None:
    wallet = home.wallet()
    trading = Api(http.request, home.client())
    request_id = submit(trading, wallet.name)["id"]
    operator = Api(http.request, home.client(role="operator"))

    answer = post(operator, {"reason": "desk reports a leaked key", "wallet": wallet.name})
    assert answer.status_code == 201, answer.text
    frozen = answer.json()
    assert frozen["scope"] == "wallet"
    assert frozen["wallet"] == wallet.name
    assert frozen["source"] == f"client:{operator.client.id}"
    assert frozen["lifted_at"] is None

    # The same freeze again (a retry): the same answer, 200, nothing new.
    again = post(operator, {"reason": "desk reports a leaked key", "wallet": wallet.name})
    assert again.status_code == 200
    assert again.json() == frozen
    assert len(home.ledger_entries("signing.frozen")) == 1

    listed = operator.call("GET", "/v1/freezes")
    assert listed.status_code == 200
    assert listed.json() == {"items": [frozen]}
    assert worker(home).drain() == 0
    assert statuses(home, [request_id]) == ["approved"]

    everything = post(operator, {"reason": "and everything else"})
    assert everything.status_code == 201
    assert everything.json()["scope"] == "installation"
    view = trading.get(request_id).json()
    assert [f["scope"] for f in view["waiting"]["freezes"]] == ["wallet", "installation"]
    assert view["waiting"]["reason"].startswith("all signing is frozen")
    listing = trading.call("GET", "/v1/requests").json()["items"]
    assert listing[0]["waiting"] == view["waiting"]


@pytest.mark.parametrize("role", ["trading", "auditor"])
def test_other_clients_may_not_freeze(http: HttpClient, home: Installation, role: str) -> None:
    api = Api(http.request, home.client(role=role))
    for answer in (post(api, {"reason": "I would like to"}), api.call("GET", "/v1/freezes")):
        assert answer.status_code == 403, answer.text
        assert answer.headers["content-type"].startswith(PROBLEM)
        assert "operator" in answer.json()["detail"]
    assert freeze_rows(home) == 0
    assert home.ledger_entries("signing.frozen") == []


def test_an_operator_client_may_not_submit_requests(http: HttpClient, home: Installation) -> None:
    wallet = home.wallet()
    operator = Api(http.request, home.client(role="operator"))
    answer = operator.create(withdrawal(wallet.name))
    assert answer.status_code == 403
    assert home.counts()["requests"] == 0


def test_a_freeze_without_a_token_is_refused(http: HttpClient, home: Installation) -> None:
    answer = http.post("/v1/freezes", content=b'{"reason": "anonymous"}')
    assert answer.status_code == 401
    assert freeze_rows(home) == 0


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"reason": "x", "wallet": "no-such-wallet"}, 404, "unknown wallet 'no-such-wallet'"),
        ({"reason": "   "}, 422, "a reason is required"),
        ({}, 422, "a reason is required"),
        ({"reason": 5}, 422, "a reason is required"),
        ({"reason": "x" * 501}, 422, "at most 500 characters"),
        ({"reason": "x", "wallet": 7}, 422, "wallet must be a wallet's name"),
        ({"reason": "x", "scope": "all"}, 422, "unknown fields: scope"),
        (b'{"reason": "x",', 422, "body is not valid JSON"),
    ],
)
def test_bad_freezes_are_refused_and_change_nothing(
    http: HttpClient, home: Installation, body: dict[str, Any] | bytes, status: int, words: str
) -> None:
    operator = Api(http.request, home.client(role="operator"))
    before = home.counts()
    answer = post(operator, body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert words in answer.json()["detail"]
    assert home.counts() == before
    assert active_freezes(home) == []
