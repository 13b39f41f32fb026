"""Trades through the ASGI app: EIP-712 orders for a registered venue, judged and signed.

A trade is judged by what its venue's declared fields say it sells, buys and pays to whom
(issue 9: an order was judged by one declared notional field only).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from custody.catalog.venues import set_primary_types
from custody.policy import PolicyInvalid
from custody.signing.worker import SignerWorker
from tests.intake.intake_support import USDC, random_address, register_token
from tests.intake.trade_support import (
    ORDER_FIELDS,
    ORDER_SPEC,
    ZERO,
    Tokens,
    first_version_venue,
    order,
    price,
    trade,
    venue,
)
from tests.support.api import Api
from tests.support.installation import Installation, WalletInfo

Policy = Callable[[str], str]


def usdc_for_weth(tokens: Tokens, contract: str, **changes: Any) -> dict[str, Any]:
    """Sell 250 USDC for 0.1 of the test's 18-decimal token."""
    terms: dict[str, Any] = {
        "sell_token": tokens.usdc,
        "buy_token": tokens.weth,
        "sell_amount": 250_000_000,
        "buy_amount": 10**17,
    }
    return order(contract, **(terms | changes))


def test_order_is_allowed_by_venue_signed_and_recovers_to_the_wallet(
    api: Api, wallet: WalletInfo, signer: SignerWorker, installation: Installation, policy: Policy
) -> None:
    tokens = Tokens(installation)
    name, contract = venue(installation)
    policy(
        "version: 1\nrules:\n"
        f"  - {{id: venue-orders, match: {{type: trade, venues: [{name}], primary_types: [Order],"
        " assets: [USDC], amount_lte: '1000000000'}, action: allow}\n"
    )
    typed = usdc_for_weth(tokens, contract, receiver=wallet.address, fee_amount=1_000_000)
    response = api.create(trade(wallet.name, name, typed))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "approved", body
    assert body["policy"]["rule"] == "venue-orders"
    assert "pays the wallet itself" in body["policy"]["reason"]
    # What leaves the wallet: the sell amount and CoW's fee on top of it.
    assert (body["type"], body["asset"], body["amount"]) == ("trade", "USDC", "251000000")
    summary = body["payload"]["summary"]
    assert f"sells 251 USDC (251000000 base units) for 0.1 {tokens.weth_symbol}" in summary
    assert f"paid to {wallet.address} (the wallet itself)" in summary
    assert body["payload"]["transaction"]["type"] == "evm.eip712"

    assert signer.drain() == 1
    signed = api.get(body["id"]).json()
    assert signed["status"] == "signed"
    signature = signed["result"]["signature"]
    assert len(bytes.fromhex(signature[2:])) == 65
    assert bytes.fromhex(signature[2:])[64] in (27, 28)
    # Recovered by eth-account from the client's own typed data (JSON numbers, not our spelling).
    assert (
        Account.recover_message(encode_typed_data(full_message=typed), signature=signature)
        == wallet.address
    )
    assert (
        Account._recover_hash(bytes.fromhex(body["payload"]["digest"][2:]), signature=signature)
        == wallet.address
    )
    created = next(
        e
        for e in installation.ledger_entries("request.signed")
        if e["data"]["request"] == body["id"]
    )
    assert created["data"]["signature"] == signature


def test_both_sides_and_the_receiver_are_facts_of_the_request(
    api: Api, wallet: WalletInfo, installation: Installation
) -> None:
    tokens = Tokens(installation)
    name, contract = venue(installation)
    typed = usdc_for_weth(tokens, contract)  # receiver zero: this venue pays the signer
    body = json.dumps(trade(wallet.name, name, typed)).encode()
    response = api.call("POST", "/v1/policy/simulate", body)
    assert response.status_code == 200, response.text
    facts = response.json()["facts"]
    assert (facts["asset"], facts["amount"]) == ("USDC", "250000000")
    assert (facts["receives_asset"], facts["receives_amount"]) == (
        tokens.weth_symbol,
        str(10**17),
    )
    assert facts["receiver"] == facts["wallet_address"] == wallet.address


def test_sell_amount_cap_counts_what_leaves_the_wallet(
    api: Api, wallet: WalletInfo, installation: Installation, policy: Policy
) -> None:
    tokens = Tokens(installation)
    name, contract = venue(installation)
    policy(
        "version: 1\nrules:\n"
        f"  - {{id: capped, match: {{type: trade, venues: [{name}], assets: [USDC],"
        " amount_lte: '1000000000'}, action: allow}\n"
    )
    at_cap = usdc_for_weth(tokens, contract, sell_amount=999_000_000, fee_amount=1_000_000)
    assert api.create(trade(wallet.name, name, at_cap)).json()["status"] == "approved"
    over = usdc_for_weth(tokens, contract, sell_amount=999_000_000, fee_amount=1_000_001)
    response = api.create(trade(wallet.name, name, over))
    assert response.status_code == 201
    assert response.json()["status"] == "rejected"
    assert response.json()["amount"] == "1000000001"


def test_amount_bound_without_assets_is_refused_for_trades(
    installation: Installation, policy: Policy
) -> None:
    """A trade's asset varies with the order, so a bound naming no asset would compare base
    units of different tokens: the policy file is refused (stored versions deny instead)."""
    name, _ = venue(installation)
    with pytest.raises(PolicyInvalid, match="amount_lte"):
        policy(
            "version: 1\nrules:\n"
            f"  - {{id: old-cap, match: {{type: trade, venues: [{name}],"
            " amount_lte: '1000000000'}, action: allow}\n"
        )


def test_selling_1000_wbtc_is_judged_by_its_own_usd_value_and_limit(
    api: Api, wallet: WalletInfo, installation: Installation, policy: Policy
) -> None:
    """Issue 9 §2: an order selling 1,000 WBTC for 100,000 USDC was "worth 100,000 USD" because
    only the USDC side was read. It is worth 60,000,000 USD, and counts against WBTC limits."""
    tokens = Tokens(installation)
    wbtc_symbol, wbtc = register_token(installation, decimals=8)
    price(installation, wbtc_symbol, "60000.00", 8)
    price(installation, "USDC", "1.00", 6)
    name, contract = venue(installation)
    sell = order(
        contract,
        sell_token=wbtc,
        buy_token=tokens.usdc,
        sell_amount=1_000 * 10**8,
        buy_amount=100_000 * 10**6,
    )
    policy(
        "version: 1\nrules:\n"
        "  - {id: deny-over-100k-usd, match: {type: trade, amount_usd_gt: '100000.00'},"
        " action: deny}\n"
        f"  - {{id: venue-orders, match: {{type: trade, venues: [{name}]}}, action: allow}}\n"
    )
    judged = api.create(trade(wallet.name, name, sell)).json()
    assert (judged["status"], judged["asset"], judged["amount"]) == (
        "rejected",
        wbtc_symbol,
        "100000000000",
    )
    assert judged["policy"]["rule"] == "deny-over-100k-usd"
    assert "is worth 60000000.00 USD, above 100000.00 USD" in judged["policy"]["reason"]

    policy(
        "version: 1\nlimits:\n"
        f"  - {{id: wbtc-daily, wallets: [{wallet.name}], asset: {wbtc_symbol}, window: 24h,"
        " max_amount: '100000000'}\n"
        "rules:\n"
        f"  - {{id: venue-orders, match: {{type: trade, venues: [{name}]}}, action: allow}}\n"
    )
    limited = api.create(trade(wallet.name, name, sell)).json()
    assert limited["status"] == "rejected"
    assert "limit wbtc-daily" in limited["policy"]["reason"]


def test_order_paying_someone_else_is_denied_unless_a_rule_lists_the_receiver(
    api: Api, wallet: WalletInfo, installation: Installation, policy: Policy
) -> None:
    """Issue 9 §2: an order paying an attacker's `receiver` was allowed by a rule for the venue."""
    tokens = Tokens(installation)
    name, contract = venue(installation)
    attacker, desk = random_address(), random_address()
    policy(
        "version: 1\nrules:\n"
        f"  - {{id: venue-orders, match: {{type: trade, venues: [{name}]}}, action: allow}}\n"
    )
    to_attacker = usdc_for_weth(tokens, contract, receiver=attacker)
    stolen = api.create(trade(wallet.name, name, to_attacker))
    assert stolen.status_code == 201
    assert stolen.json()["status"] == "rejected"
    assert stolen.json()["policy"]["rule"] is None
    assert f"the trade pays {attacker}, not the wallet" in stolen.json()["policy"]["reason"]

    policy(
        "version: 1\nallowlists:\n"
        f"  otc-desks: [{{chain: ethereum, address: '{desk}', label: desk}}]\n"
        "rules:\n"
        f"  - {{id: to-desks, match: {{type: trade, venues: [{name}], receiver_in: otc-desks}},"
        " action: {require_approvals: {count: 1, group: treasury}}}\n"
        f"  - {{id: venue-orders, match: {{type: trade, venues: [{name}]}}, action: allow}}\n"
    )
    again = api.create(trade(wallet.name, name, to_attacker))
    assert (again.json()["status"], again.json()["policy"]["rule"]) == ("rejected", None)
    listed = api.create(trade(wallet.name, name, usdc_for_weth(tokens, contract, receiver=desk)))
    assert listed.json()["status"] == "pending_approval"
    assert listed.json()["policy"]["rule"] == "to-desks"
    assert f"pays {desk}, which is on allowlist otc-desks" in listed.json()["policy"]["reason"]
    own = api.create(trade(wallet.name, name, usdc_for_weth(tokens, contract)))
    assert own.json()["policy"]["rule"] == "to-desks"  # receiver_in admits the wallet itself
    assert "pays the wallet itself" in own.json()["policy"]["reason"]


def test_zero_receiver_means_the_wallet_only_where_the_venue_declares_it(
    api: Api, wallet: WalletInfo, installation: Installation, policy: Policy
) -> None:
    tokens = Tokens(installation)
    cow, cow_contract = venue(installation)
    plain, plain_contract = venue(installation, ORDER_SPEC.removesuffix(":zero_receiver=wallet"))
    policy(
        "version: 1\nrules:\n"
        f"  - {{id: venues, match: {{type: trade, venues: [{cow}, {plain}]}}, action: allow}}\n"
    )
    signer_paid = api.create(trade(wallet.name, cow, usdc_for_weth(tokens, cow_contract))).json()
    assert signer_paid["status"] == "approved"
    burnt = api.create(trade(wallet.name, plain, usdc_for_weth(tokens, plain_contract))).json()
    assert burnt["status"] == "rejected"
    assert f"the trade pays {ZERO}, not the wallet" in burnt["policy"]["reason"]


@pytest.mark.parametrize("side", ["sell_token", "buy_token"])
def test_order_with_an_unregistered_token_is_refused(
    api: Api, wallet: WalletInfo, installation: Installation, side: str
) -> None:
    tokens = Tokens(installation)
    name, contract = venue(installation)
    unknown = random_address()
    before = installation.counts()
    response = api.create(
        trade(wallet.name, name, usdc_for_weth(tokens, contract, **{side: unknown}))
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    verb = "sells" if side == "sell_token" else "buys"
    assert (
        f"the order {verb} token {unknown}, which is not a registered asset on chain ethereum"
        in response.json()["detail"]
    )
    assert installation.counts() == before


def test_first_version_venue_is_refused_until_declared_anew(
    api: Api, wallet: WalletInfo, installation: Installation, policy: Policy
) -> None:
    tokens = Tokens(installation)
    name, contract = first_version_venue(installation)
    policy(
        "version: 1\nrules:\n"
        f"  - {{id: venue-orders, match: {{type: trade, venues: [{name}]}}, action: allow}}\n"
    )
    typed = usdc_for_weth(tokens, contract)
    before = installation.counts()
    refused = api.create(trade(wallet.name, name, typed))
    assert refused.status_code == 422
    assert f"declare it anew with `custody venues set {name}" in refused.json()["detail"]
    assert installation.counts() == before

    with installation.runtime.db.write() as session:
        set_primary_types(session, name=name, primary_types=[ORDER_SPEC], actor="test")
    assert api.create(trade(wallet.name, name, typed)).json()["status"] == "approved"


def _wrong_chain(typed: dict[str, Any]) -> None:
    typed["domain"]["chainId"] = 5


def _wrong_contract(typed: dict[str, Any]) -> None:
    typed["domain"]["verifyingContract"] = random_address()


def _undeclared_type(typed: dict[str, Any]) -> None:
    typed["types"]["Cancel"] = typed["types"].pop("Order")
    typed["primaryType"] = "Cancel"


def _without(field: str) -> Callable[[dict[str, Any]], None]:
    def change(typed: dict[str, Any]) -> None:
        typed["types"]["Order"] = [f for f in ORDER_FIELDS if f["name"] != field]
        del typed["message"][field]

    return change


def _retyped(field: str, kind: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(typed: dict[str, Any]) -> None:
        typed["types"]["Order"] = [
            {"name": f["name"], "type": kind if f["name"] == field else f["type"]}
            for f in ORDER_FIELDS
        ]
        typed["message"][field] = value

    return change


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        pytest.param(_wrong_chain, "chainId is 5", id="wrong-chain-id"),
        pytest.param(_wrong_contract, "verifyingContract", id="wrong-verifying-contract"),
        pytest.param(_undeclared_type, "does not accept Cancel orders", id="undeclared-type"),
        pytest.param(
            _without("feeAmount"),
            "has no field feeAmount, which the venue declares as its sell amount",
            id="missing-fee",
        ),
        pytest.param(
            _without("receiver"),
            "has no field receiver, which the venue declares as its receiver",
            id="missing-receiver",
        ),
        pytest.param(
            _retyped("sellAmount", "int256", 5),
            "the sell amount must be an unsigned integer",
            id="signed-sell-amount",
        ),
        pytest.param(
            _retyped("buyToken", "bytes20", "0x" + "11" * 20),
            "the buy token must be an address",
            id="buy-token-as-bytes",
        ),
    ],
)
def test_order_outside_the_venue_declaration_is_refused(
    api: Api,
    wallet: WalletInfo,
    installation: Installation,
    change: Callable[[dict[str, Any]], None],
    detail: str,
) -> None:
    tokens = Tokens(installation)
    name, contract = venue(installation)
    typed = copy.deepcopy(usdc_for_weth(tokens, contract))
    change(typed)
    before = installation.counts()
    response = api.create(trade(wallet.name, name, typed))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert detail in response.json()["detail"]
    assert installation.counts() == before


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        pytest.param({"venue": "no-such-venue"}, "unknown venue", id="unknown-venue"),
        pytest.param({"extra": 1}, "extra: unknown field", id="unknown-field"),
        pytest.param({"typed_data": {"types": {}}}, "typed data", id="malformed-typed-data"),
    ],
)
def test_bad_trade_body_is_refused(
    api: Api, wallet: WalletInfo, installation: Installation, body: dict[str, Any], detail: str
) -> None:
    tokens = Tokens(installation)
    name, contract = venue(installation)
    before = installation.counts()
    response = api.create(trade(wallet.name, name, usdc_for_weth(tokens, contract)) | body)
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]
    assert installation.counts() == before


def test_sign_message_is_denied_by_a_policy_that_does_not_name_it(
    api: Api, wallet: WalletInfo
) -> None:
    response = api.create({"type": "sign_message", "wallet": wallet.name, "message": "hi"})
    assert response.status_code == 201
    assert response.json()["status"] == "rejected"
    assert response.json()["policy"]["rule"] is None


def test_typed_signature_is_checked_against_the_wallet_before_release() -> None:
    """The handler's software check refuses a signature by another key, high s or a bad v."""
    from coincurve import PrivateKey

    from custody.chains import Digest, SignatureMismatch, address_from_public_key
    from custody.secp256k1 import N as SECP256K1_N
    from custody.signing.payloads import verify_typed_signature

    key, other = PrivateKey(b"\x01" * 32), PrivateKey(b"\x02" * 32)
    digest = Digest(b"\x42" * 32)
    raw = key.sign_recoverable(digest.value, hasher=None)
    r, s, v = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), 27 + raw[64]
    owner = address_from_public_key(key.public_key.format(compressed=False))
    verify_typed_signature(digest, r, s, v, owner)
    with pytest.raises(SignatureMismatch, match="signed by"):
        verify_typed_signature(
            digest, r, s, v, address_from_public_key(other.public_key.format(compressed=False))
        )
    with pytest.raises(SignatureMismatch):
        verify_typed_signature(digest, r, SECP256K1_N - s, 55 - v, owner)  # the high-s twin
    with pytest.raises(SignatureMismatch):
        verify_typed_signature(digest, r, s, 29, owner)


def test_stored_typed_data_must_be_canonical_to_be_signed() -> None:
    from custody.errors import CustodyError
    from custody.signing.payloads import Eip712Handler

    typed = order(
        random_address(), sell_token=USDC, buy_token=random_address(), sell_amount=1, buy_amount=1
    )
    with pytest.raises(CustodyError, match="canonical"):
        Eip712Handler().digest({"type": "evm.eip712", "typed_data": typed, "venue": "v"})


def _huge_amount(typed: dict[str, Any]) -> None:
    typed["message"]["sellAmount"] = "9" * 5000


def _huge_negative_valid_to(typed: dict[str, Any]) -> None:
    typed["message"]["validTo"] = "-" + "9" * 4301


def _huge_chain_id(typed: dict[str, Any]) -> None:
    typed["domain"]["chainId"] = "1" * 4400


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        pytest.param(_huge_amount, "sellAmount does not fit uint256", id="amount-5000-digits"),
        pytest.param(_huge_negative_valid_to, "validTo", id="negative-4301-digits"),
        pytest.param(_huge_chain_id, "chainId", id="chain-id-4400-digits"),
    ],
)
def test_typed_data_integers_past_python_s_digit_limit_are_refused(
    api: Api,
    wallet: WalletInfo,
    installation: Installation,
    change: Callable[[dict[str, Any]], None],
    detail: str,
) -> None:
    """Decimal strings, which EIP-712 allows for integers: int() raised ValueError past 4,300
    digits, a 500 with a traceback."""
    tokens = Tokens(installation)
    name, contract = venue(installation)
    typed = copy.deepcopy(usdc_for_weth(tokens, contract))
    change(typed)
    before = installation.counts()
    response = api.create(trade(wallet.name, name, typed))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert detail in response.json()["detail"]
    assert installation.counts() == before
