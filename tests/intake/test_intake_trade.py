"""Trades through the ASGI app: EIP-712 orders for a registered venue, capped and signed."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from custody.catalog.venues import add_venue
from custody.signing.worker import SignerWorker
from tests.intake.intake_support import USDC, ensure_usdc, random_address
from tests.support.api import Api
from tests.support.installation import Installation, WalletInfo

Policy = Callable[[str], str]
ORDER = [
    {"name": "maker", "type": "address"},
    {"name": "sellToken", "type": "address"},
    {"name": "makerAmount", "type": "uint256"},
    {"name": "takerAmount", "type": "uint256"},
    {"name": "validTo", "type": "uint32"},
]


def venue(installation: Installation) -> tuple[str, str]:
    """A fresh venue (name, verifying contract) on ethereum whose Orders are notional in USDC."""
    ensure_usdc(installation)
    name, contract = f"venue-{secrets.token_hex(4)}", random_address()
    with installation.runtime.db.write() as session:
        add_venue(
            session,
            name=name,
            chain_name="ethereum",
            verifying_contract=contract,
            primary_types=["Order:notional_field=makerAmount:asset=USDC"],
            actor="test",
        )
    return name, contract


def order(
    maker: str,
    contract: str,
    *,
    amount: int = 250_000_000,
    chain_id: int = 1,
    primary: str = "Order",
    fields: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    fields = ORDER if fields is None else fields
    values = {
        "maker": maker,
        "sellToken": USDC,
        "makerAmount": amount,
        "takerAmount": 10**17,
        "validTo": 1_900_000_000,
    }
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            primary: fields,
        },
        "primaryType": primary,
        "domain": {
            "name": "Test Venue",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": contract,
        },
        "message": {f["name"]: values[f["name"]] for f in fields},
    }


def trade(wallet: str, venue_name: str, typed_data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "trade", "wallet": wallet, "venue": venue_name, "typed_data": typed_data}


def test_order_is_allowed_by_venue_signed_and_recovers_to_the_wallet(
    api: Api, wallet: WalletInfo, signer: SignerWorker, installation: Installation, policy: Policy
) -> None:
    name, contract = venue(installation)
    policy(
        "version: 1\nrules:\n"
        f"  - {{id: venue-orders, match: {{type: trade, venues: [{name}], primary_types: [Order],"
        " assets: [USDC], amount_lte: '1000000000'}, action: allow}\n"
    )
    typed = order(wallet.address, contract)
    response = api.create(trade(wallet.name, name, typed))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "approved", body
    assert body["policy"]["rule"] == "venue-orders"
    assert (body["type"], body["asset"], body["amount"]) == ("trade", "USDC", "250000000")
    assert "makerAmount 250 USDC (250000000 base units)" in body["payload"]["summary"]
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
    entry = next(
        e
        for e in installation.ledger_entries("request.signed")
        if e["data"]["request"] == body["id"]
    )
    assert entry["data"]["signature"] == signature


def test_notional_cap_is_enforced(
    api: Api, wallet: WalletInfo, installation: Installation, policy: Policy
) -> None:
    name, contract = venue(installation)
    policy(
        "version: 1\nrules:\n"
        f"  - {{id: capped, match: {{type: trade, venues: [{name}], assets: [USDC],"
        " amount_lte: '1000000000'},"
        " action: allow}\n"
    )
    at_cap = api.create(
        trade(wallet.name, name, order(wallet.address, contract, amount=1_000_000_000))
    )
    assert at_cap.json()["status"] == "approved"
    over = api.create(
        trade(wallet.name, name, order(wallet.address, contract, amount=1_000_000_001))
    )
    assert over.status_code == 201
    assert over.json()["status"] == "rejected"
    assert over.json()["amount"] == "1000000001"


def _wrong_chain(typed: dict[str, Any], contract: str) -> None:
    typed["domain"]["chainId"] = 5


def _wrong_contract(typed: dict[str, Any], contract: str) -> None:
    typed["domain"]["verifyingContract"] = random_address()


def _undeclared_type(typed: dict[str, Any], contract: str) -> None:
    typed["types"]["Cancel"] = typed["types"].pop("Order")
    typed["primaryType"] = "Cancel"


def _no_notional(typed: dict[str, Any], contract: str) -> None:
    typed["types"]["Order"] = [f for f in ORDER if f["name"] != "makerAmount"]
    del typed["message"]["makerAmount"]


def _signed_notional(typed: dict[str, Any], contract: str) -> None:
    typed["types"]["Order"] = [
        {"name": f["name"], "type": "int256" if f["name"] == "makerAmount" else f["type"]}
        for f in ORDER
    ]


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        pytest.param(_wrong_chain, "chainId is 5", id="wrong-chain-id"),
        pytest.param(_wrong_contract, "verifyingContract", id="wrong-verifying-contract"),
        pytest.param(_undeclared_type, "does not accept Cancel orders", id="undeclared-type"),
        pytest.param(_no_notional, "no field makerAmount", id="missing-notional"),
        pytest.param(_signed_notional, "unsigned integer", id="signed-notional"),
    ],
)
def test_order_outside_the_venue_declaration_is_refused(
    api: Api,
    wallet: WalletInfo,
    installation: Installation,
    change: Callable[[dict[str, Any], str], None],
    detail: str,
) -> None:
    name, contract = venue(installation)
    typed = copy.deepcopy(order(wallet.address, contract))
    change(typed, contract)
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
    name, contract = venue(installation)
    before = installation.counts()
    response = api.create(trade(wallet.name, name, order(wallet.address, contract)) | body)
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

    typed = order(random_address(), random_address())
    with pytest.raises(CustodyError, match="canonical"):
        Eip712Handler().digest({"type": "evm.eip712", "typed_data": typed, "venue": "v"})


def _huge_amount(typed: dict[str, Any]) -> None:
    typed["message"]["makerAmount"] = "9" * 5000


def _huge_negative_valid_to(typed: dict[str, Any]) -> None:
    typed["message"]["validTo"] = "-" + "9" * 4301


def _huge_chain_id(typed: dict[str, Any]) -> None:
    typed["domain"]["chainId"] = "1" * 4400


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        pytest.param(_huge_amount, "makerAmount does not fit uint256", id="amount-5000-digits"),
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
    name, contract = venue(installation)
    typed = copy.deepcopy(order(wallet.address, contract))
    change(typed)
    before = installation.counts()
    response = api.create(trade(wallet.name, name, typed))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert detail in response.json()["detail"]
    assert installation.counts() == before
