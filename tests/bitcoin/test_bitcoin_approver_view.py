"""An approver sees a Bitcoin request in Bitcoin terms: BTC, change, fee and rate, outpoints."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from embit import script
from embit.ec import PrivateKey
from embit.networks import NETWORKS
from embit.psbt import PSBT
from fastapi.testclient import TestClient as HttpClient

from custody.app import create_app
from custody.signing.worker import SignerWorker
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


def _unused_address() -> str:
    key = PrivateKey(secrets.token_bytes(32)).get_public_key()
    return str(script.p2wpkh(key).address(NETWORKS["regtest"]))


def _sign(
    api: Api, signer: SignerWorker, installation: Installation, request: dict[str, str]
) -> None:
    installation.apply_policy(
        "version: 1\nrules:\n  - {id: btc, match: {type: bitcoin_psbt}, action: allow}\n"
    )
    try:
        created = api.create(request)
        assert created.json()["status"] == "approved", created.text
        assert signer.drain() == 1  # the signer re-checks this policy
    finally:
        installation.allow_all_policy()
    assert api.get(created.json()["id"]).json()["status"] == "signed"


def test_every_new_address_of_a_batch_is_flagged(
    app: HttpClient, api: Api, signer: SignerWorker, installation: Installation
) -> None:
    wallet = bitcoin_wallet(installation)
    paid, fresh = _unused_address(), _unused_address()
    _sign(api, signer, installation, body(wallet, funding_psbt(wallet, to=paid)))
    batch = funding_psbt(
        wallet, inputs=(100_000,), send=30_000, to=paid, also=((fresh, 20_000),), change=49_000
    )
    page = _page(app, installation, wallet, batch)
    # the first address was paid before: the second, new one must not hide behind it
    assert f"New destination {fresh}: no earlier signed request paid it" in page
    assert f"New destination {paid}" not in page
    assert "New destination: " not in page


def test_an_address_a_signed_batch_paid_is_not_new_any_more(
    app: HttpClient, api: Api, signer: SignerWorker, installation: Installation
) -> None:
    wallet = bitcoin_wallet(installation)
    first, second, other = _unused_address(), _unused_address(), _unused_address()
    batch = funding_psbt(
        wallet, inputs=(100_000,), send=30_000, to=first, also=((second, 20_000),), change=49_000
    )
    _sign(api, signer, installation, body(wallet, batch))
    assert "New destination" not in _page(
        app, installation, wallet, funding_psbt(wallet, to=second)
    )
    fresh = _page(app, installation, wallet, funding_psbt(wallet, to=other))
    assert "New destination: no earlier signed request sent anything here" in fresh
