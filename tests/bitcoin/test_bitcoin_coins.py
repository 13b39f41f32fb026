"""One live request per Bitcoin coin, idempotent replays, and a check that the independent
interpreter the signing tests rely on does refuse a bad witness."""

from __future__ import annotations

import uuid

import pytest
from bitcointx.core.scripteval import VerifyScriptError

from custody.chains.bitcoin import wallet_script
from custody.signing.worker import SignerWorker
from tests.bitcoin.bitcoin_support import bitcoin_wallet, body, funding_psbt, verify_independently
from tests.support.api import Api
from tests.support.installation import Installation

ALLOW_BTC = (
    "version: 1\nrules:\n"
    "  - {id: btc, match: {type: bitcoin_psbt}, action: allow}\n"
    "  - {id: allow-withdrawals, match: {type: withdrawal}, action: allow}\n"
)


@pytest.fixture
def allow_btc(installation: Installation) -> object:
    installation.apply_policy(ALLOW_BTC)
    yield
    installation.allow_all_policy()


def test_the_same_psbt_twice_with_one_key_is_one_request(
    api: Api, installation: Installation, allow_btc: object
) -> None:
    wallet = bitcoin_wallet(installation)
    request_body = body(wallet, funding_psbt(wallet))
    key = str(uuid.uuid4())
    first = api.create(request_body, key=key)
    before = installation.counts()
    again = api.create(request_body, key=key)
    assert again.json()["id"] == first.json()["id"]
    assert installation.counts() == before


def test_a_second_psbt_spending_a_live_requests_coin_is_refused(
    api: Api, installation: Installation, allow_btc: object
) -> None:
    wallet = bitcoin_wallet(installation)
    first = funding_psbt(wallet, inputs=(60_000, 50_000))
    assert api.create(body(wallet, first)).json()["status"] == "approved"
    # Another transaction reusing the first one's second coin, with a fresh one of its own.
    second = funding_psbt(wallet, inputs=(60_000, 50_000))
    second.tx.vin[1].txid = second.inputs[1].txid = first.tx.vin[1].txid
    second.tx.vin[1].vout = second.inputs[1].vout = first.tx.vin[1].vout
    before = installation.counts()
    refused = api.create(body(wallet, second))
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert f"{first.tx.vin[1].txid.hex()}:{first.tx.vin[1].vout}" in refused.json()["detail"]
    assert installation.counts() == before


def test_the_interpreter_refuses_a_tampered_witness(
    api: Api, installation: Installation, signer: SignerWorker, allow_btc: object
) -> None:
    wallet = bitcoin_wallet(installation)
    created = api.create(body(wallet, funding_psbt(wallet, inputs=(110_000,)))).json()
    assert signer.drain() == 1
    raw = api.get(created["id"]).json()["result"]["raw_transaction"]
    spk = wallet_script(wallet.descriptor).script_pubkey
    verify_independently(raw, [(spk, 110_000)])
    with pytest.raises(VerifyScriptError):
        verify_independently(raw, [(spk, 110_001)])  # BIP-143 commits to the amount spent
