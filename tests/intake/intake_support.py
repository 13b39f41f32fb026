"""Helpers for the intake tests: registry entries, request bodies, calldata and a tiny token."""

from __future__ import annotations

import secrets
from typing import Any

from eth_abi.abi import encode
from eth_utils.address import to_checksum_address

from custody.catalog.assets import add_asset, asset_by_symbol
from custody.catalog.chains import chain_by_name
from tests.support.installation import Installation

USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
TRANSFER = "a9059cbb"
APPROVE = "095ea7b3"
TRANSFER_FROM = "23b872dd"
EXEC_TRANSACTION = "6a761202"
SAFE_TYPES = [
    "address",
    "uint256",
    "bytes",
    "uint8",
    "uint256",
    "uint256",
    "uint256",
    "address",
    "address",
    "bytes",
]
ZERO = "0x" + "00" * 20


def random_address() -> str:
    return to_checksum_address("0x" + secrets.token_hex(20))


def register_token(
    installation: Installation, *, decimals: int = 6, contract: str | None = None
) -> tuple[str, str]:
    """A fresh token (symbol, contract) on ethereum; the shared installation keeps every one."""
    symbol = "T" + secrets.token_hex(4).upper()
    address = contract or random_address()
    with installation.runtime.db.write() as session:
        add_asset(
            session,
            symbol=symbol,
            chain_name="ethereum",
            contract=address,
            decimals=decimals,
            actor="test",
        )
    return symbol, address


def ensure_usdc(installation: Installation) -> None:
    with installation.runtime.db.write() as session:
        chain = chain_by_name(session, "ethereum")
        if asset_by_symbol(session, chain.id, "USDC") is None:
            add_asset(
                session,
                symbol="USDC",
                chain_name="ethereum",
                contract=USDC,
                decimals=6,
                actor="test",
            )


def calldata(selector: str, types: list[str], args: list[Any]) -> str:
    return "0x" + selector + encode(types, args).hex()


def transfer(to: str, amount: int) -> str:
    return calldata(TRANSFER, ["address", "uint256"], [to, amount])


def approve(spender: str, amount: int) -> str:
    return calldata(APPROVE, ["address", "uint256"], [spender, amount])


def safe_exec(to: str, inner: bytes, operation: int) -> str:
    args = [to, 0, inner, operation, 0, 0, 0, ZERO, ZERO, b"\x11" * 65]
    return calldata(EXEC_TRANSACTION, SAFE_TYPES, args)


def contract_call(
    wallet: str,
    to: str,
    data: str,
    *,
    value: str = "0",
    nonce: int = 0,
    gas: int = 100_000,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "contract_call",
        "wallet": wallet,
        "to": to,
        "data": data,
        "value": value,
        "evm": {
            "nonce": nonce,
            "gas": gas,
            "max_fee_per_gas": "30000000000",
            "max_priority_fee_per_gas": "1000000000",
        },
    }
    body.update(extra)
    return body
