"""Trades for the intake tests: venues declared the current way, CoW-shaped orders, tokens."""

from __future__ import annotations

import json
import secrets
from typing import Any

from custody.catalog.chains import chain_by_name
from custody.catalog.venues import add_venue
from custody.prices.service import set_price
from custody.store.base import utcnow
from custody.store.models import Venue
from tests.intake.intake_support import USDC, ensure_usdc, random_address, register_token
from tests.support.installation import Installation

ZERO = "0x" + "00" * 20
ORDER_FIELDS = [
    {"name": "sellToken", "type": "address"},
    {"name": "buyToken", "type": "address"},
    {"name": "receiver", "type": "address"},
    {"name": "sellAmount", "type": "uint256"},
    {"name": "buyAmount", "type": "uint256"},
    {"name": "validTo", "type": "uint32"},
    {"name": "feeAmount", "type": "uint256"},
]
# CoW Protocol's reading: the fee leaves the wallet too, and a zero receiver means the signer.
ORDER_SPEC = (
    "Order:sell_token=sellToken:sell_amount=sellAmount+feeAmount:buy_token=buyToken"
    ":buy_amount=buyAmount:receiver=receiver:zero_receiver=wallet"
)


class Tokens:
    """USDC and a fresh 18-decimal token (`weth`) on ethereum, registered for a test."""

    def __init__(self, installation: Installation) -> None:
        ensure_usdc(installation)
        self.usdc = USDC
        self.weth_symbol, self.weth = register_token(installation, decimals=18)


def venue(installation: Installation, spec: str = ORDER_SPEC) -> tuple[str, str]:
    """A fresh venue (name, verifying contract) on ethereum accepting `spec`'s orders."""
    name, contract = f"venue-{secrets.token_hex(4)}", random_address()
    with installation.runtime.db.write() as session:
        add_venue(
            session,
            name=name,
            chain_name="ethereum",
            verifying_contract=contract,
            primary_types=[spec],
            actor="test",
        )
    return name, contract


def first_version_venue(installation: Installation) -> tuple[str, str]:
    """A venue as the first version stored it: a notional field in a fixed asset, nothing else.

    Written to the table directly, as an upgraded installation holds it: today's `venues add`
    refuses that declaration.
    """
    ensure_usdc(installation)
    name, contract = f"venue-{secrets.token_hex(4)}", random_address()
    with installation.runtime.db.write() as session:
        chain_id = chain_by_name(session, "ethereum").id
        session.add(
            Venue(
                name=name,
                chain_id=chain_id,
                verifying_contract=contract,
                primary_types=json.dumps(
                    {"Order": {"asset": "USDC", "notional_field": "buyAmount"}}, sort_keys=True
                ),
                created_at=utcnow(),
            )
        )
    return name, contract


def price(installation: Installation, symbol: str, usd: str, decimals: int) -> None:
    with installation.runtime.db.write() as session:
        set_price(session, symbol=symbol, usd_per_unit=usd, decimals=decimals, actor="test")


def order(
    contract: str,
    *,
    sell_token: str,
    buy_token: str,
    sell_amount: int,
    buy_amount: int,
    receiver: str = ZERO,
    fee_amount: int = 0,
    chain_id: int = 1,
) -> dict[str, Any]:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Order": ORDER_FIELDS,
        },
        "primaryType": "Order",
        "domain": {
            "name": "Test Venue",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": contract,
        },
        "message": {
            "sellToken": sell_token,
            "buyToken": buy_token,
            "receiver": receiver,
            "sellAmount": sell_amount,
            "buyAmount": buy_amount,
            "validTo": 1_900_000_000,
            "feeAmount": fee_amount,
        },
    }


def trade(wallet: str, venue_name: str, typed_data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "trade", "wallet": wallet, "venue": venue_name, "typed_data": typed_data}
