"""Batches: a PSBT paying several addresses besides change. Policy sees every destination; a
permitting rule's destination condition must hold for every one, a deny rule's for any one;
the amount (and so every limit) is the sum sent away, change excluded. Through the HTTP API
and the signer, on the real token; the signed batch is checked with python-bitcointx."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from custody.chains.bitcoin import wallet_script
from custody.requests import repository as requests
from custody.signing.worker import SignerWorker
from tests.bitcoin.bitcoin_support import (
    BitcoinWallet,
    bitcoin_wallet,
    body,
    funding_psbt,
    verify_independently,
)
from tests.support.api import Api
from tests.support.installation import Installation

# P2WPKH addresses of 20 repeated bytes (0x33, 0x44, 0x22): two desks and a blocked one.
DESK_A = "bcrt1qxvenxvenxvenxvenxvenxvenxvenxvenztev8a"
DESK_B = "bcrt1qg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyay3npn"
BLOCKED = "bcrt1qyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zs4w3j0"
ELSEWHERE = "bcrt1qzyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3lgth6c"
POLICY = f"""
version: 1
allowlists:
  desks:
    - {{chain: regtest, address: "{DESK_A}", label: "desk A"}}
    - {{chain: regtest, address: "{DESK_B}", label: "desk B"}}
    - {{chain: regtest, address: "{BLOCKED}", label: "listed, and blocked too"}}
  blocked:
    - {{chain: regtest, address: "{BLOCKED}", label: "sanctioned"}}
rules:
  - {{id: no-blocked, match: {{type: bitcoin_psbt, destination_in: [blocked]}}, action: deny}}
  - id: desks
    match: {{type: bitcoin_psbt, destination_in: [desks], assets: [BTC], amount_lte: "100000"}}
    action: allow
"""


@pytest.fixture
def wallet(installation: Installation) -> Iterator[BitcoinWallet]:
    installation.apply_policy(POLICY)
    try:
        yield bitcoin_wallet(installation)
    finally:
        installation.allow_all_policy()


def _batch(wallet: BitcoinWallet, *paid: tuple[str, int], inputs: int = 200_000) -> str:
    (first, amount), rest = paid[0], paid[1:]
    change = inputs - sum(a for _, a in paid) - 2_000
    psbt = funding_psbt(wallet, inputs=(inputs,), send=amount, to=first, also=rest, change=change)
    return str(psbt.to_base64())


def test_a_batch_to_two_allowlisted_addresses_is_allowed_and_signed(
    api: Api, installation: Installation, signer: SignerWorker, wallet: BitcoinWallet
) -> None:
    created = api.create(body(wallet, _batch(wallet, (DESK_A, 30_000), (DESK_B, 50_000))))
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["status"] == "approved", view
    assert view["policy"]["rule"] == "desks"
    assert view["amount"] == "80000"  # the sum sent away; 118,000 change excluded
    assert DESK_A in view["policy"]["reason"]
    assert DESK_B in view["policy"]["reason"]
    with installation.runtime.db.read() as session:
        facts = json.loads(requests.locked(session, view["id"], for_update=False).facts or "{}")
    assert facts["destinations"] == [DESK_A, DESK_B]
    assert signer.drain() == 1
    signed = api.get(view["id"]).json()
    assert signed["status"] == "signed", signed
    script = wallet_script(wallet.descriptor).script_pubkey
    tx = verify_independently(signed["result"]["raw_transaction"], [(script, 200_000)])
    assert [out.nValue for out in tx.vout] == [30_000, 50_000, 118_000]


def test_a_batch_with_one_unlisted_address_is_not_allowed_by_the_allowlist_rule(
    api: Api, wallet: BitcoinWallet
) -> None:
    # one listed address must not carry an unlisted one past the rule
    view = api.create(body(wallet, _batch(wallet, (DESK_A, 30_000), (ELSEWHERE, 1_000)))).json()
    assert view["status"] == "rejected", view
    assert view["policy"]["rule"] is None


def test_a_deny_rule_on_one_destination_denies_the_batch(api: Api, wallet: BitcoinWallet) -> None:
    # BLOCKED is on the desks list too: only the deny rule, holding for ANY destination, stops it
    view = api.create(body(wallet, _batch(wallet, (DESK_A, 30_000), (BLOCKED, 1_000)))).json()
    assert view["status"] == "rejected", view
    assert view["policy"]["rule"] == "no-blocked"
    assert f"goes to {BLOCKED}, which is on allowlist blocked" in view["policy"]["reason"]


def test_amount_bounds_and_limits_count_the_sum_of_a_batch(
    api: Api, installation: Installation, wallet: BitcoinWallet
) -> None:
    # each output under the rule's 100,000 sats, together over it
    over = api.create(body(wallet, _batch(wallet, (DESK_A, 60_000), (DESK_B, 50_000)))).json()
    assert over["status"] == "rejected", over
    installation.apply_policy(
        POLICY + f"limits:\n  - {{id: daily, wallets: [{wallet.name}], asset: BTC, window: 24h,"
        ' max_amount: "100000"}\n'
    )
    first = api.create(body(wallet, _batch(wallet, (DESK_A, 40_000), (DESK_B, 50_000))))
    assert first.json()["status"] == "approved", first.json()
    # 90,000 counted: 6,000 + 5,000 more pass 100,000 though each output alone would fit
    second = api.create(body(wallet, _batch(wallet, (DESK_A, 6_000), (DESK_B, 5_000)))).json()
    assert second["status"] == "rejected", second
    assert "limit daily" in second["policy"]["reason"]
