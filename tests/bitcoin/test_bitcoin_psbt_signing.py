"""Bitcoin PSBTs signed on the real SoftHSM2 token, checked by an independent interpreter.

Each PSBT is built here with embit from fake funding UTXOs; custody signs it through the HTTP
API and the signer worker, and python-bitcointx's VerifyScript (not embit, not custody) checks
every input of the finalized transaction against the script and amount it spends.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from embit.descriptor import Descriptor
from embit.descriptor.checksum import add_checksum
from embit.ec import PrivateKey
from embit.networks import NETWORKS
from embit.psbt import PSBT

from custody.chains.bitcoin import wallet_script
from custody.chains.bitcoin.psbt import script_code
from custody.requests import repository as requests
from custody.secp256k1 import is_low_s
from custody.signing.worker import SignerWorker
from tests.bitcoin.bitcoin_support import (
    ELSEWHERE,
    BitcoinWallet,
    bitcoin_wallet,
    body,
    funding_psbt,
    refused,
    verify_independently,
)
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation

BLOCKED = "bcrt1qyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zs4w3j0"  # P2WPKH of 20 bytes of 0x22
POLICY = """
version: 1
allowlists:
  blocked:
    - {{chain: regtest, address: "{blocked}", label: "sanctioned"}}
rules:
  - {{id: no-blocked, match: {{type: bitcoin_psbt, destination_in: [blocked]}}, action: deny}}
  - id: small-btc
    match: {{type: bitcoin_psbt, assets: [BTC], amount_lte: "{limit}"}}
    action: allow
  - {{id: allow-withdrawals, match: {{type: withdrawal}}, action: allow}}
"""


@pytest.fixture
def btc_policy(installation: Installation) -> Iterator[None]:
    installation.apply_policy(POLICY.format(blocked=BLOCKED, limit=100_000))
    try:
        yield
    finally:
        installation.allow_all_policy()


@pytest.fixture
def p2wpkh(installation: Installation) -> BitcoinWallet:
    return bitcoin_wallet(installation)


@pytest.fixture
def multisig(installation: Installation) -> BitcoinWallet:
    return bitcoin_wallet(installation, owners=3, threshold=2)


def _signed(api: Api, signer: SignerWorker, request_body: dict[str, Any]) -> dict[str, Any]:
    created = api.create(request_body)
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["status"] == "approved", view
    assert signer.drain() == 1
    signed = api.get(view["id"]).json()
    assert signed["status"] == "signed", signed
    return signed


def _spent(wallet: BitcoinWallet, amounts: tuple[int, ...]) -> list[tuple[bytes, int]]:
    script = wallet_script(wallet.descriptor).script_pubkey
    return [(script, amount) for amount in amounts]


def _der_low_s_all(signature: bytes) -> None:
    assert signature[-1] == 1  # SIGHASH_ALL
    der = signature[:-1]
    assert der[0] == 0x30
    assert der[1] == len(der) - 2
    s_at = 4 + der[3]
    assert is_low_s(int.from_bytes(der[s_at + 2 :], "big"))


def test_p2wpkh_psbt_is_signed_and_verifies_independently(
    api: Api,
    signer: SignerWorker,
    installation: Installation,
    p2wpkh: BitcoinWallet,
    btc_policy: None,
) -> None:
    psbt = funding_psbt(p2wpkh)
    signed = _signed(api, signer, body(p2wpkh, psbt))
    # Policy saw what leaves the wallet: the 70,000 sats sent, not the 39,000 change.
    assert signed["asset"] == "BTC"
    assert signed["amount"] == "70000"
    assert signed["destination"] == ELSEWHERE
    result = signed["result"]
    assert set(result) == {"psbt", "raw_transaction", "txid"}
    tx = verify_independently(result["raw_transaction"], _spent(p2wpkh, (60_000, 50_000)))
    assert tx.GetTxid()[::-1].hex() == result["txid"]
    for witness in tx.wit.vtxinwit:
        signature, key = list(witness.scriptWitness.stack)
        _der_low_s_all(bytes(signature))
        assert len(key) == 33
    # The returned PSBT carries the same transaction, finalized.
    returned = PSBT.from_base64(result["psbt"])
    assert returned.tx.txid().hex() == result["txid"]
    assert all(inp.final_scriptwitness is not None for inp in returned.inputs)
    facts = [
        e["data"]
        for e in installation.ledger_entries("policy.evaluated")
        if e["data"]["request"] == signed["id"]
    ]
    assert facts
    assert facts[0]["result"]["decision"] == "allow"


def test_p2wsh_two_of_three_is_signed_with_two_keys(
    api: Api, signer: SignerWorker, multisig: BitcoinWallet, btc_policy: None
) -> None:
    psbt = funding_psbt(multisig, inputs=(80_000, 30_000, 20_000), send=90_000, change=39_000)
    signed = _signed(api, signer, body(multisig, psbt))
    assert signed["amount"] == "90000"
    result = signed["result"]
    tx = verify_independently(result["raw_transaction"], _spent(multisig, (80_000, 30_000, 20_000)))
    script = wallet_script(multisig.descriptor)
    for witness in tx.wit.vtxinwit:
        stack = list(witness.scriptWitness.stack)
        assert bytes(stack[0]) == b""  # CHECKMULTISIG's extra pop
        assert len(stack) == 2 + 2  # dummy, two signatures, witness script
        assert bytes(stack[-1]) == script.witness_script
        for signature in stack[1:-1]:
            _der_low_s_all(bytes(signature))


def test_descriptor_checksum_and_address_match_embit(
    p2wpkh: BitcoinWallet, multisig: BitcoinWallet
) -> None:
    for wallet in (p2wpkh, multisig):
        text, _, checksum = wallet.descriptor.partition("#")
        assert add_checksum(text) == wallet.descriptor
        assert len(checksum) == 8
        derived = Descriptor.from_string(text).address(NETWORKS["regtest"])
        assert derived == wallet.address
    assert multisig.descriptor.startswith("wsh(sortedmulti(2,")
    assert p2wpkh.descriptor.startswith("wpkh(")
    assert p2wpkh.address.startswith("bcrt1q")


def test_a_blocked_destination_is_denied(api: Api, p2wpkh: BitcoinWallet, btc_policy: None) -> None:
    created = api.create(body(p2wpkh, funding_psbt(p2wpkh, to=BLOCKED)))
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["status"] == "rejected"
    assert "no-blocked" in view["policy"]["reason"] or "no-blocked" in str(view["policy"])


def test_the_amount_limit_counts_what_leaves_not_the_change(
    api: Api, p2wpkh: BitcoinWallet, btc_policy: None
) -> None:
    # 150,000 sats in, 60,000 out and 89,000 back: under the 100,000 limit.
    small = funding_psbt(p2wpkh, inputs=(150_000,), send=60_000, change=89_000)
    assert api.create(body(p2wpkh, small)).json()["status"] == "approved"
    # 101,000 away is over it: no rule allows, so it is denied.
    large = funding_psbt(p2wpkh, inputs=(150_000,), send=101_000, change=48_000)
    assert api.create(body(p2wpkh, large)).json()["status"] == "rejected"


def test_bad_psbts_are_refused_with_one_problem_and_no_row(
    api: Api, installation: Installation, p2wpkh: BitcoinWallet, multisig: BitcoinWallet
) -> None:
    refused(api, installation, body(p2wpkh, "not base64 at all!"), "not base64")
    refused(api, installation, body(p2wpkh, base64.b64encode(b"hello").decode()), "not a PSBT")

    missing = funding_psbt(p2wpkh)
    missing.inputs[1].witness_utxo = None
    refused(api, installation, body(p2wpkh, missing), "input 1 has no witness_utxo")

    foreign = funding_psbt(multisig)  # spends the multisig's script, not p2wpkh's
    foreign.inputs[0].witness_script = None
    foreign.inputs[1].witness_script = None
    refused(api, installation, body(p2wpkh, foreign), "does not spend this wallet's script")

    none = funding_psbt(p2wpkh)
    none.inputs[0].sighash_type = 2  # SIGHASH_NONE
    refused(api, installation, body(p2wpkh, none), "only ALL")

    no_script = funding_psbt(multisig)
    no_script.inputs[0].witness_script = None
    refused(api, installation, body(multisig, no_script), "witness_script")

    burning = funding_psbt(p2wpkh, inputs=(5_000_000,), send=1_000, change=None)
    refused(api, installation, body(p2wpkh, burning), "above this chain's cap")

    overspend = funding_psbt(p2wpkh, inputs=(10_000,), send=20_000, change=None)
    refused(api, installation, body(p2wpkh, overspend), "spend more than the inputs")

    floats = {
        "type": "bitcoin_psbt",
        "wallet": p2wpkh.name,
        "psbt": funding_psbt(p2wpkh).to_base64(),
        "fee": 1.5,
    }
    before = installation.counts()
    assert api.create(floats).status_code == 422
    assert installation.counts() == before


FEE_POLICY = """
version: 1
rules:
  - {id: dear, match: {type: bitcoin_psbt, assets: [BTC], fee_gt: "5000"}, action: deny}
  - {id: btc, match: {type: bitcoin_psbt, assets: [BTC], fee_lte: "5000"}, action: allow}
  - {id: allow-withdrawals, match: {type: withdrawal}, action: allow}
"""


def test_policy_sees_the_fee(api: Api, installation: Installation, p2wpkh: BitcoinWallet) -> None:
    installation.apply_policy(FEE_POLICY)
    try:
        cheap = api.create(body(p2wpkh, funding_psbt(p2wpkh, inputs=(100_000,), change=29_000)))
        dear = api.create(body(p2wpkh, funding_psbt(p2wpkh, inputs=(100_000,), change=20_000)))
    finally:
        installation.allow_all_policy()
    assert cheap.json()["status"] == "approved"
    assert cheap.json()["policy"]["rule"] == "btc"
    assert dear.json()["status"] == "rejected"
    assert dear.json()["policy"]["rule"] == "dear"
    assert "pays a fee of 10000, above 5000" in dear.json()["policy"]["reason"]
    with installation.runtime.db.read() as session:
        stored = requests.locked(session, dear.json()["id"], for_update=False)
        assert json.loads(stored.facts or "{}")["fee"] == "10000"


def test_psbts_custody_cannot_vouch_for_arerefused(
    api: Api, installation: Installation, p2wpkh: BitcoinWallet
) -> None:
    stranger = PrivateKey(secrets.token_bytes(32))
    signed_by_stranger = funding_psbt(p2wpkh)
    sighash = signed_by_stranger.tx.sighash_segwit(
        0, script_code(wallet_script(p2wpkh.descriptor)), 60_000
    )
    signature = stranger.sign(sighash).serialize() + b"\x01"
    signed_by_stranger.inputs[0].partial_sigs[stranger.get_public_key()] = signature
    refused(api, installation, body(p2wpkh, signed_by_stranger), "signature by a non-owner key")

    evm = installation.wallet()
    refused(api, installation, body(BitcoinWallet(evm.name, "", "", ()), funding_psbt(p2wpkh)),
             "not a Bitcoin wallet")  # fmt: skip
    refused(api, installation, withdrawal(p2wpkh.name), "not an EVM chain")


def test_a_daily_limit_counts_sats_sent_not_change(
    api: Api, installation: Installation, p2wpkh: BitcoinWallet
) -> None:
    installation.apply_policy(
        "version: 1\n"
        "limits:\n"
        f"  - {{id: btc-daily, wallets: [{p2wpkh.name}], asset: BTC, window: 24h,"
        ' max_amount: "100000"}\n'
        "rules:\n"
        "  - {id: btc, match: {type: bitcoin_psbt}, action: allow}\n"
        "  - {id: allow-withdrawals, match: {type: withdrawal}, action: allow}\n"
    )
    try:
        # 60,000 + 40,000 sent fill the limit exactly, with 1,000,000 sats of change around.
        first = funding_psbt(p2wpkh, inputs=(600_000,), send=60_000, change=539_000)
        second = funding_psbt(p2wpkh, inputs=(500_000,), send=40_000, change=459_000)
        third = funding_psbt(p2wpkh, inputs=(10_000,), send=1_000, change=8_000)
        statuses = [api.create(body(p2wpkh, p)).json()["status"] for p in (first, second, third)]
    finally:
        installation.allow_all_policy()
    assert statuses == ["approved", "approved", "rejected"]


FEE_RATE_POLICY = """
version: 1
rules:
  - {id: hasty, match: {type: bitcoin_psbt, fee_rate_gt: "50"}, action: deny}
  - {id: btc, match: {type: bitcoin_psbt, fee_rate_lte: "50"}, action: allow}
  - {id: allow-withdrawals, match: {type: withdrawal}, action: allow}
"""


def test_policy_sees_the_fee_rate(
    api: Api, installation: Installation, p2wpkh: BitcoinWallet
) -> None:
    installation.apply_policy(FEE_RATE_POLICY)
    try:
        # one input, two outputs: about 141 vB once signed, so 1,000 sats ~8 sat/vB and 10,000
        # sats ~71 sat/vB
        slow = api.create(body(p2wpkh, funding_psbt(p2wpkh, inputs=(100_000,), change=29_000)))
        hasty = api.create(body(p2wpkh, funding_psbt(p2wpkh, inputs=(100_000,), change=20_000)))
    finally:
        installation.allow_all_policy()
    assert slow.json()["status"] == "approved"
    assert slow.json()["policy"]["rule"] == "btc"
    assert hasty.json()["status"] == "rejected"
    assert hasty.json()["policy"]["rule"] == "hasty"
    with installation.runtime.db.read() as session:
        stored = requests.locked(session, hasty.json()["id"], for_update=False)
        rate = json.loads(stored.facts or "{}")["fee_rate"]
    assert 60 < int(rate) < 80
    assert f"pays {rate} sat/vB, above 50" in hasty.json()["policy"]["reason"]
