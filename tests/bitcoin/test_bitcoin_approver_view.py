"""An approver sees a Bitcoin request in Bitcoin terms: BTC, change, fee and rate, outpoints."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from embit.psbt import PSBT
from fastapi.testclient import TestClient as HttpClient

from custody.app import create_app
from custody.web import sessions
from tests.bitcoin.bitcoin_support import (
    ELSEWHERE,
    BitcoinWallet,
    bitcoin_wallet,
    body,
    funding_psbt,
)
from tests.support.api import Api
from tests.support.approver_app import session_cookie
from tests.support.installation import Installation

SECOND = "bcrt1qxvenxvenxvenxvenxvenxvenxvenxvenztev8a"  # P2WPKH of 20 bytes of 0x33


@pytest.fixture
def app(installation: Installation) -> Iterator[HttpClient]:
    with HttpClient(create_app(installation.runtime, run_worker=False)) as client:
        yield client


def _page(app: HttpClient, installation: Installation, wallet: BitcoinWallet, psbt: PSBT) -> str:
    """The approver app's page of a request for `psbt`, waiting for one treasury approval."""
    installation.apply_policy(
        "version: 1\nrules:\n"
        "  - {id: btc, match: {type: bitcoin_psbt},"
        " action: {require_approvals: {count: 1, group: treasury}}}\n"
    )
    try:
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
    return page.text


def test_detail_shows_btc_change_and_fee(app: HttpClient, installation: Installation) -> None:
    wallet = bitcoin_wallet(installation, owners=3, threshold=2)
    psbt = funding_psbt(wallet, inputs=(60_000, 50_000), send=70_000, change=39_000)
    page = _page(app, installation, wallet, psbt)
    assert "0.0007 BTC" in page
    assert ELSEWHERE in page
    assert "39000 sats back to this wallet" in page
    assert "fee 1000 sats" in page
    assert "(Bitcoin network)" in page
    assert psbt.tx.txid().hex() in page
    assert 'id="btc-outputs"' not in page


def test_detail_shows_every_output_of_a_batch(app: HttpClient, installation: Installation) -> None:
    wallet = bitcoin_wallet(installation)
    psbt = funding_psbt(
        wallet, inputs=(100_000,), send=30_000, also=((SECOND, 20_000),), change=49_000
    )
    page = _page(app, installation, wallet, psbt)
    assert "0.0005 BTC" in page  # the sum paid away
    assert f"{ELSEWHERE} (30000 sats)" in page
    assert f"{SECOND} (20000 sats)" in page
    assert "2 outputs; the amount is their sum" in page
    assert "Batch: pays 2 addresses" in page
    assert f"Batch output to {SECOND} is not on any allowlist" in page
