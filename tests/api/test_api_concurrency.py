"""Concurrent calls over real HTTP (uvicorn): one nonce, one request, one signature."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from api_checks import PROBLEM_JSON, wallet_requests

from custody.signing.worker import SignerWorker
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, WalletInfo
from tests.support.lifecycle import assert_histories_hold

WORKERS = 16


@pytest.fixture
def live_api(live_url: str, installation: Installation) -> Iterator[Api]:
    limits = httpx.Limits(max_connections=WORKERS, max_keepalive_connections=WORKERS)
    with httpx.Client(base_url=live_url, timeout=60, limits=limits) as client:
        yield Api(client.request, installation.client())


def test_fifty_payloads_for_one_nonce_make_one_request_and_one_signature(
    live_api: Api, installation: Installation, wallet: WalletInfo, signer: SignerWorker
) -> None:
    before = installation.counts()
    bodies = [withdrawal(wallet.name, amount=str(1000 + i), nonce=9) for i in range(50)]
    with ThreadPoolExecutor(WORKERS) as pool:
        responses = list(pool.map(live_api.create, bodies))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 49, [r.text for r in responses if r.status_code != 409]
    for response in responses:
        if response.status_code == 409:
            assert response.headers["content-type"] == PROBLEM_JSON
            assert response.json()["status"] == 409
    [winner] = [r.json() for r in responses if r.status_code == 201]

    rows = wallet_requests(installation, wallet.name)
    assert [(r.id, r.evm_nonce, r.status) for r in rows] == [(winner["id"], 9, "approved")]
    assert installation.counts()["requests"] == before["requests"] + 1

    signer.drain()
    rows = wallet_requests(installation, wallet.name)
    assert [(r.id, r.status) for r in rows] == [(winner["id"], "signed")]
    signed = [
        e
        for e in installation.ledger_entries("request.signed")
        if e["data"]["request"] == winner["id"]
    ]
    assert len(signed) == 1
    assert live_api.get(winner["id"]).json()["amount"] == winner["amount"]
    assert_histories_hold(installation, [winner["id"]])


def test_thirty_replays_of_one_key_make_one_request(
    live_api: Api, installation: Installation, wallet: WalletInfo
) -> None:
    key = str(uuid.uuid4())
    body = json.dumps(withdrawal(wallet.name, amount="777", nonce=1)).encode()
    with ThreadPoolExecutor(WORKERS) as pool:
        responses = list(pool.map(lambda _: live_api.create(body, key=key), range(30)))

    assert [r.status_code for r in responses] == [201] * 30, [
        r.text for r in responses if r.status_code != 201
    ]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    replayed = [r for r in responses if r.headers.get("idempotent-replayed") == "true"]
    assert len(replayed) == 29
    first = next(r for r in responses if r.headers.get("idempotent-replayed") != "true")
    assert all(r.json() == first.json() for r in responses)
    assert [r.id for r in wallet_requests(installation, wallet.name)] == list(ids)


def test_concurrent_requests_for_different_nonces_all_succeed(
    live_api: Api, installation: Installation, wallet: WalletInfo
) -> None:
    bodies = [withdrawal(wallet.name, amount="5", nonce=n) for n in range(24)]
    with ThreadPoolExecutor(WORKERS) as pool:
        responses = list(pool.map(live_api.create, bodies))
    assert [r.status_code for r in responses] == [201] * 24, [r.text for r in responses]
    rows = wallet_requests(installation, wallet.name)
    assert sorted(r.evm_nonce for r in rows) == list(range(24))
