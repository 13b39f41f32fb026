"""`GET /v1/requests` pages through a client's own requests; `POST .../cancel` ends one."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from api_checks import assert_problem
from fastapi.testclient import TestClient as HttpClient

from custody.signing.worker import SignerWorker
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, WalletInfo


@pytest.fixture
def api(isolated_http: HttpClient, installation: Installation) -> Api:
    """A fresh client on an app with its own connection pools (see `isolated_http`)."""
    return Api(isolated_http.request, installation.client())


def _list(api: Api, query: str = "") -> dict[str, Any]:
    response = api.call("GET", "/v1/requests" + query)
    assert response.status_code == 200, response.text
    return response.json()


def _create(api: Api, wallet: WalletInfo, count: int) -> list[str]:
    ids = []
    for nonce in range(count):
        response = api.create(withdrawal(wallet.name, amount=str(1000 + nonce), nonce=nonce))
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_pages_are_newest_first_without_gaps_or_duplicates(api: Api, wallet: WalletInfo) -> None:
    created = _create(api, wallet, 7)

    pages: list[list[str]] = []
    query = "?limit=3"
    while True:
        page = _list(api, query)
        pages.append([item["id"] for item in page["items"]])
        if page["next_cursor"] is None:
            break
        assert len(pages) < 5, "pagination does not end"
        query = f"?limit=3&cursor={page['next_cursor']}"

    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == list(reversed(created))
    everything = _list(api)
    assert [item["id"] for item in everything["items"]] == list(reversed(created))
    assert everything["next_cursor"] is None
    first = everything["items"][0]
    assert first["amount"] == "1006"
    assert first["wallet"] == wallet.name


def test_exactly_one_full_page_has_no_next_cursor(api: Api, wallet: WalletInfo) -> None:
    created = _create(api, wallet, 3)
    page = _list(api, "?limit=3")
    assert [item["id"] for item in page["items"]] == list(reversed(created))
    assert page["next_cursor"] is None


def test_status_filter(api: Api, wallet: WalletInfo) -> None:
    created = _create(api, wallet, 5)
    for request_id in created[1:3]:
        response = api.call("POST", f"/v1/requests/{request_id}/cancel")
        assert response.status_code == 200, response.text

    cancelled = _list(api, "?status=cancelled")["items"]
    approved = _list(api, "?status=approved")["items"]
    assert [i["id"] for i in cancelled] == [created[2], created[1]]
    assert {i["status"] for i in cancelled} == {"cancelled"}
    assert [i["id"] for i in approved] == [created[4], created[3], created[0]]
    assert _list(api, "?status=signed")["items"] == []
    # The filter composes with paging.
    page = _list(api, "?status=approved&limit=2")
    assert [i["id"] for i in page["items"]] == [created[4], created[3]]
    rest = _list(api, f"?status=approved&limit=2&cursor={page['next_cursor']}")
    assert [i["id"] for i in rest["items"]] == [created[0]]
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("?status=bogus", id="unknown-status"),
        pytest.param("?limit=0", id="limit-0"),
        pytest.param("?limit=201", id="limit-201"),
        pytest.param("?limit=ten", id="limit-not-a-number"),
    ],
)
def test_bad_list_parameters(api: Api, wallet: WalletInfo, query: str) -> None:
    assert_problem(api.call("GET", "/v1/requests" + query), 422)


@pytest.mark.parametrize(
    "cursor",
    [
        pytest.param("garbage!!", id="not-base64"),
        pytest.param("A", id="bad-padding"),
        pytest.param(_cursor({"a": 1}), id="object"),
        pytest.param(_cursor(None), id="null"),
        pytest.param(_cursor([1, 2]), id="numbers"),
        pytest.param(_cursor(["yesterday", "req_1"]), id="not-a-date"),
        pytest.param(_cursor(["2024-01-01T00:00:00+00:00", "req_1", "x"]), id="three-items"),
        pytest.param(base64.urlsafe_b64encode(b"\xff\xfe").decode(), id="not-utf8"),
        # Well-formed JSON but no time zone: this server only ever issues UTC times.
        pytest.param(_cursor(["2024-01-01T00:00:00", "req_1"]), id="naive-time"),
    ],
)
def test_forged_cursor_is_refused(api: Api, wallet: WalletInfo, cursor: str) -> None:
    _create(api, wallet, 1)
    assert_problem(api.call("GET", f"/v1/requests?cursor={cursor}"), 422, "cursor")


def test_cancel_an_approved_request(
    api: Api, installation: Installation, wallet: WalletInfo, signer: SignerWorker
) -> None:
    [request_id] = _create(api, wallet, 1)
    before = installation.counts()

    response = api.call("POST", f"/v1/requests/{request_id}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["id"] == request_id
    assert installation.counts()["ledger"] == before["ledger"] + 1
    [entry] = [
        e
        for e in installation.ledger_entries("request.cancelled")
        if e["data"]["request"] == request_id
    ]
    assert entry["data"]["from"] == "approved"
    assert entry["data"]["to"] == "cancelled"
    assert entry["actor"] == f"client:{api.client.id}"

    # Never signed afterwards, and cancelling twice is a conflict that changes nothing.
    signer.drain()
    assert api.get(request_id).json()["status"] == "cancelled"
    after = installation.counts()
    assert_problem(api.call("POST", f"/v1/requests/{request_id}/cancel"), 409, "cancelled")
    assert installation.counts() == after


def test_cancel_a_signed_request_is_a_conflict(
    api: Api, installation: Installation, wallet: WalletInfo, signer: SignerWorker
) -> None:
    [request_id] = _create(api, wallet, 1)
    signer.drain()
    signed = api.get(request_id).json()
    assert signed["status"] == "signed"
    before = installation.counts()

    assert_problem(api.call("POST", f"/v1/requests/{request_id}/cancel"), 409, "signed")
    assert installation.counts() == before
    assert api.get(request_id).json() == signed


def test_cancel_an_unknown_request(api: Api, installation: Installation) -> None:
    before = installation.counts()
    assert_problem(api.call("POST", f"/v1/requests/req_{'0' * 24}/cancel"), 404)
    assert installation.counts() == before
