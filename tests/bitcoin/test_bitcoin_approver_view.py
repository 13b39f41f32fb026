"""An approver sees a Bitcoin request in Bitcoin terms: BTC, change, fee and rate, outpoints."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient as HttpClient

from custody.app import create_app
from custody.web import sessions
from tests.bitcoin.bitcoin_support import ELSEWHERE, bitcoin_wallet, body, funding_psbt
from tests.support.api import Api
from tests.support.approver_app import session_cookie
from tests.support.installation import Installation


@pytest.fixture
def app(installation: Installation) -> Iterator[HttpClient]:
    with HttpClient(create_app(installation.runtime, run_worker=False)) as client:
        yield client


def test_detail_shows_btc_change_and_fee(app: HttpClient, installation: Installation) -> None:
    wallet = bitcoin_wallet(installation, owners=3, threshold=2)
    installation.apply_policy(
        "version: 1\nrules:\n"
        "  - {id: btc, match: {type: bitcoin_psbt},"
        " action: {require_approvals: {count: 1, group: treasury}}}\n"
    )
    try:
        psbt = funding_psbt(wallet, inputs=(60_000, 50_000), send=70_000, change=39_000)
        created = Api(app.request, installation.client()).create(body(wallet, psbt))
        assert created.json()["status"] == "pending_approval", created.text
    finally:
        installation.allow_all_policy()
    cookie = session_cookie(installation, ["treasury"], prefix="checker")
    page = app.get(
        f"/app/requests/{created.json()['id']}",
        headers={"Cookie": f"{sessions.COOKIE_NAME}={cookie}"},
    )
    assert page.status_code == 200, page.text
    assert "0.0007 BTC" in page.text
    assert ELSEWHERE in page.text
    assert "39000 sats back to this wallet" in page.text
    assert "fee 1000 sats" in page.text
    assert "(Bitcoin network)" in page.text
    assert psbt.tx.txid().hex() in page.text
