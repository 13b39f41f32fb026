"""`Idempotency-Key`: the same call answers the same; a reused key with another body is refused."""

from __future__ import annotations

import json
import uuid

from api_checks import assert_problem, wallet_requests
from fastapi.testclient import TestClient as HttpClient

from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, WalletInfo


def test_same_key_and_bytes_replay_the_first_answer(
    api: Api, installation: Installation, wallet: WalletInfo
) -> None:
    key = str(uuid.uuid4())
    body = json.dumps(withdrawal(wallet.name, amount="42", nonce=1)).encode()

    first = api.create(body, key=key)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    after_first = installation.counts()

    for _ in range(2):
        again = api.create(body, key=key)
        assert again.status_code == 201, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
    assert installation.counts() == after_first
    rows = wallet_requests(installation, wallet.name)
    assert [r.id for r in rows] == [first.json()["id"]]


def test_same_key_with_another_body_is_a_conflict(
    api: Api, installation: Installation, wallet: WalletInfo
) -> None:
    key = str(uuid.uuid4())
    first = api.create(withdrawal(wallet.name, amount="42", nonce=1), key=key)
    assert first.status_code == 201, first.text
    before = installation.counts()

    other_amount = api.create(withdrawal(wallet.name, amount="43", nonce=1), key=key)
    other_nonce = api.create(withdrawal(wallet.name, amount="42", nonce=2), key=key)
    invalid = api.create(b"{}", key=key)
    for response in (other_amount, other_nonce, invalid):
        problem = assert_problem(response, 409, key)
        assert "idempotent-replayed" not in response.headers
        assert problem["type"].endswith("idempotency-conflict")
    assert installation.counts() == before
    assert [r.id for r in wallet_requests(installation, wallet.name)] == [first.json()["id"]]

    # The first request is untouched by the refused reuses.
    assert api.get(first.json()["id"]).json()["amount"] == "42"


def test_the_same_key_for_two_clients_is_independent(
    api: Api, http: HttpClient, installation: Installation, wallet: WalletInfo
) -> None:
    other = Api(http.request, installation.client())
    key = "order-0001"

    mine = api.create(withdrawal(wallet.name, amount="1", nonce=1), key=key)
    theirs = other.create(withdrawal(wallet.name, amount="2", nonce=2), key=key)
    assert mine.status_code == 201, mine.text
    assert theirs.status_code == 201, theirs.text
    assert "idempotent-replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]
    assert theirs.json()["amount"] == "2"

    # Each client's replay returns its own request.
    mine_again = api.create(withdrawal(wallet.name, amount="1", nonce=1), key=key)
    theirs_again = other.create(withdrawal(wallet.name, amount="2", nonce=2), key=key)
    assert mine_again.json() == mine.json()
    assert theirs_again.json() == theirs.json()
    assert len(wallet_requests(installation, wallet.name)) == 2
