"""Replacing a signed Bitcoin transaction (BIP-125): a new PSBT naming the request it replaces,
spending one of its coins again with a higher fee and fee rate. Without the name, a coin a live
or signed request spends is still refused; the signer believes the name only from the client's
signed body. The replacement's inputs are checked with python-bitcointx's interpreter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from embit.psbt import PSBT
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import text

from custody.chains.bitcoin import wallet_script
from custody.signing.worker import SignerWorker
from custody.web import sessions
from tests.bitcoin.bitcoin_support import (
    BitcoinWallet,
    bitcoin_wallet,
    body,
    funding_psbt,
    verify_independently,
)
from tests.signing.conftest import assert_not_signed
from tests.support.api import Api
from tests.support.approver_app import session_cookie
from tests.support.installation import Installation
from tests.support.lifecycle import assert_histories_hold

INPUTS = (60_000, 50_000)
BTC_POLICY = """
version: 1
rules:
  - id: small-btc
    match: {type: bitcoin_psbt, assets: [BTC], amount_lte: "100000"}
    action: allow
  - id: large-btc
    match: {type: bitcoin_psbt}
    action: {require_approvals: {count: 2, group: treasury}}
  - {id: allow-withdrawals, match: {type: withdrawal}, action: allow}
"""


@pytest.fixture
def wallet(installation: Installation) -> Iterator[BitcoinWallet]:
    installation.apply_policy(BTC_POLICY)
    try:
        yield bitcoin_wallet(installation)
    finally:
        installation.allow_all_policy()


def _respend(
    wallet: BitcoinWallet,
    of: PSBT,
    *,
    change: int | None,
    send: int = 70_000,
    fresh: bool = False,
) -> PSBT:
    """A PSBT spending the coins of `of` again (with `fresh`, a new coin in place of the first)."""
    again = funding_psbt(wallet, inputs=INPUTS, send=send, change=change)
    for index in range(1 if fresh else 0, len(INPUTS)):
        again.tx.vin[index].txid = again.inputs[index].txid = of.tx.vin[index].txid
        again.tx.vin[index].vout = again.inputs[index].vout = of.tx.vin[index].vout
    return again


def _signed(api: Api, signer: SignerWorker, wallet: BitcoinWallet) -> tuple[PSBT, dict[str, Any]]:
    """A signed request paying a 1,000 sats fee."""
    psbt = funding_psbt(wallet, inputs=INPUTS, send=70_000, change=39_000)
    created = api.create(body(wallet, psbt)).json()
    assert created["status"] == "approved", created
    assert signer.drain() == 1
    return psbt, created


def _replacing(wallet: BitcoinWallet, psbt: PSBT, replaced: str) -> dict[str, str]:
    return body(wallet, psbt) | {"replaces": replaced}


def test_a_signed_psbt_is_replaced_by_one_paying_more(
    api: Api, installation: Installation, signer: SignerWorker, wallet: BitcoinWallet
) -> None:
    first_psbt, first = _signed(api, signer, wallet)
    bumped = _respend(wallet, first_psbt, change=37_000)  # fee 3,000 sats
    created = api.create(_replacing(wallet, bumped, first["id"]))
    assert created.status_code == 201, created.text
    second = created.json()
    assert second["status"] == "approved"
    assert second["replaces"] == first["id"]
    assert signer.drain() == 1

    raw = api.get(second["id"]).json()["result"]["raw_transaction"]
    spk = wallet_script(wallet.descriptor).script_pubkey
    tx = verify_independently(raw, [(spk, amount) for amount in INPUTS])
    # bitcointx keeps txids in internal byte order, embit as explorers show them.
    spent = [(bytes(i.prevout.hash)[::-1], i.prevout.n) for i in tx.vin]
    assert spent == [(bytes(i.txid), i.vout) for i in first_psbt.tx.vin]
    assert api.get(first["id"]).json()["replaced_by"] == second["id"]
    created_entries = [
        e["data"]
        for e in installation.ledger_entries("request.created")
        if e["data"]["request"] == second["id"]
    ]
    assert created_entries[0]["replaces"] == first["id"]

    # The line goes on from its newest transaction only.
    again = api.create(_replacing(wallet, _respend(wallet, first_psbt, change=35_000), first["id"]))
    assert again.status_code == 409, again.text
    assert f"already replaced by request {second['id']}" in again.json()["detail"]
    # One coin of the line is enough to replace it (the other here is a fresh one).
    one_coin = _respend(wallet, first_psbt, change=35_000, fresh=True)
    third = api.create(_replacing(wallet, one_coin, second["id"]))
    assert third.status_code == 201, third.text
    assert signer.drain() == 1
    assert_histories_hold(installation, [first["id"], second["id"], third.json()["id"]])


def test_a_replacement_is_judged_and_approved_like_any_request(
    api: Api,
    http: HttpClient,
    installation: Installation,
    signer: SignerWorker,
    wallet: BitcoinWallet,
) -> None:
    first_psbt, first = _signed(api, signer, wallet)
    larger = _respend(wallet, first_psbt, send=105_000, change=2_000)
    created = api.create(_replacing(wallet, larger, first["id"])).json()
    assert created["status"] == "pending_approval", created
    assert signer.drain() == 0
    # The approver sees what it replaces.
    cookie = session_cookie(installation, ["treasury"], prefix="checker")
    page = http.get(
        f"/app/requests/{created['id']}", headers={"Cookie": f"{sessions.COOKIE_NAME}={cookie}"}
    )
    assert page.status_code == 200, page.text
    assert f'id="replaces">{first["id"]}' in page.text


def test_without_replaces_a_signed_coin_is_still_refused(
    api: Api, installation: Installation, signer: SignerWorker, wallet: BitcoinWallet
) -> None:
    first_psbt, _ = _signed(api, signer, wallet)
    before = installation.counts()
    refused = api.create(body(wallet, _respend(wallet, first_psbt, change=37_000)))
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("outpoint-in-use")
    assert installation.counts() == before


def test_what_cannot_be_replaced_is_refused_with_one_problem_and_no_row(
    api: Api,
    http: HttpClient,
    installation: Installation,
    signer: SignerWorker,
    wallet: BitcoinWallet,
) -> None:
    first_psbt, first = _signed(api, signer, wallet)
    other_wallet = bitcoin_wallet(installation)
    other_psbt, other_first = _signed(api, signer, other_wallet)
    another_client = Api(http.request, installation.client())
    waiting = funding_psbt(wallet, inputs=INPUTS, send=105_000, change=None)  # needs approvals
    pending = api.create(body(wallet, waiting)).json()
    assert pending["status"] == "pending_approval"
    before = installation.counts()

    def refused(api: Api, request_body: dict[str, str], status: int, says: str) -> None:
        answer = api.create(request_body)
        assert answer.status_code == status, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert says in answer.json()["detail"], answer.json()

    bumped = _respend(wallet, first_psbt, change=37_000)
    refused(
        another_client, _replacing(wallet, bumped, first["id"]), 404, f"no request {first['id']!r}"
    )
    refused(
        api,
        _replacing(wallet, bumped, other_first["id"]),
        422,
        f"is not a PSBT of wallet {wallet.name}",
    )
    unrelated = funding_psbt(wallet, inputs=INPUTS, send=70_000, change=30_000)
    refused(api, _replacing(wallet, unrelated, first["id"]), 422, "spends none of the coins")
    same_fee = _respend(wallet, first_psbt, send=69_000, change=40_000)
    refused(api, _replacing(wallet, same_fee, first["id"]), 422, "higher fee and fee rate")
    # More sats, but over a larger transaction (a third input): a lower rate than 1,000 sats over
    # the first one's two inputs would be, still above its fee of 1,000.
    wider = funding_psbt(wallet, inputs=(*INPUTS, 1_500), send=70_000, change=40_400)
    for index in range(len(INPUTS)):
        wider.tx.vin[index].txid = wider.inputs[index].txid = first_psbt.tx.vin[index].txid
        wider.tx.vin[index].vout = wider.inputs[index].vout = first_psbt.tx.vin[index].vout
    refused(api, _replacing(wallet, wider, first["id"]), 422, "higher fee and fee rate")
    # A replacement too may take no coin another live request spends.
    grabbing = _respend(wallet, first_psbt, change=37_000)
    grabbing.tx.vin[1].txid = grabbing.inputs[1].txid = waiting.tx.vin[1].txid
    grabbing.tx.vin[1].vout = grabbing.inputs[1].vout = waiting.tx.vin[1].vout
    refused(api, _replacing(wallet, grabbing, first["id"]), 409, f"by request {pending['id']}")
    early = _respend(wallet, waiting, send=104_000, change=None)
    refused(api, _replacing(wallet, early, pending["id"]), 409, "only a signed transaction")
    assert installation.counts() == before
    assert other_psbt  # its coins were never at stake


def _insider(installation: Installation, request_id: str, **columns: Any) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in columns)
    with installation.runtime.db.engine.begin() as conn:
        conn.execute(
            text(f"UPDATE requests SET {assignments} WHERE id = :id"), {**columns, "id": request_id}
        )


def test_a_replacement_link_only_in_the_row_gets_nothing_signed(
    api: Api, installation: Installation, signer: SignerWorker, wallet: BitcoinWallet
) -> None:
    first_psbt, first = _signed(api, signer, wallet)
    # An approved request the client signed without naming any replacement (other coins), which
    # an insider links to the signed one before the signer takes it.
    unnamed = funding_psbt(wallet, inputs=INPUTS, send=70_000, change=38_000)
    created = api.create(body(wallet, unnamed)).json()
    assert created["status"] == "approved"
    _insider(installation, created["id"], replaces=first["id"], nonce_generation=1)
    assert signer.drain() == 0
    assert_not_signed(installation, api, created["id"])
    assert first_psbt
