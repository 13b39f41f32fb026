"""What a decoded contract call means for policy: which asset moves, how much, and to whom.

A registered token's `transfer` and `transferFrom` move that token, so they are judged as
withdrawals of it (limits and allowlists for the asset apply); an `approve` lets the spender
move the approved amount later, so it is judged as a contract call naming the token, amount and
spender. Any other call moves only the transaction's own value, in the chain's native asset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from custody.chains import DecodedCall, format_units
from custody.chains.evm.calldata import ArgValue
from custody.intake.errors import InvalidBody
from custody.store.models import Asset, Chain

TOKEN_MOVES = ("transfer", "transferFrom")


@dataclass(frozen=True)
class CallMeaning:
    asset: str
    amount: int
    destination: str
    judged_as: str
    action: str
    """The summary's opening words, e.g. `transfer 250 USDC (250000000 base units) to 0x…`."""


def meaning(
    call: DecodedCall, *, token: Asset | None, chain: Chain, to: str, value: int
) -> CallMeaning:
    if token is not None and call.method in (*TOKEN_MOVES, "approve"):
        if value != 0:
            # The ETH would move unjudged next to the token; ERC-20 methods are not payable.
            raise InvalidBody(f"value must be 0 for an ERC-20 {call.method}, got {value}")
        amount = _int(call.args["amount"])
        shown = f"{format_units(amount, token.decimals)} {token.symbol} ({amount} base units)"
        if call.method == "approve":
            spender = _address(call.args["spender"])
            what = f"an unlimited amount of {token.symbol}" if call.unlimited_approval else shown
            return CallMeaning(
                token.symbol, amount, spender, "contract_call", f"approve {spender} to spend {what}"
            )
        recipient = _address(call.args["to"])
        source = f" from {_address(call.args['from'])}" if call.method == "transferFrom" else ""
        return CallMeaning(
            token.symbol,
            amount,
            recipient,
            "withdrawal",
            f"transfer {shown}{source} to {recipient}",
        )
    native = f"{format_units(value, chain.native_decimals)} {chain.native_asset}"
    if call.unknown_method:
        action = f"call unknown method {call.selector} with {native}"
    elif call.method == "execTransaction":
        inner_to = _address(call.args["to"])
        operation = "DELEGATECALL" if call.delegatecall else "call"
        inner = call.inner.method if call.inner is not None else "no calldata"
        action = f"Safe execTransaction: {operation} {inner_to} ({inner}) with {native}"
    else:
        action = f"call {call.signature} with {native}"
    return CallMeaning(chain.native_asset, value, to, "contract_call", action)


def _address(value: ArgValue) -> str:
    # The ABI type is address, which the decoder returns EIP-55 checksummed.
    if not isinstance(value, str):
        raise InvalidBody(f"expected an address argument, got {type(value).__name__}")
    return value


def _int(value: ArgValue) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidBody(f"expected an integer argument, got {type(value).__name__}")
    return value


def call_details(call: DecodedCall) -> dict[str, Any]:
    """The decoded call for people and the ledger: JSON-ready, integers as decimal strings."""
    details: dict[str, Any] = {
        "method": call.method,
        "selector": call.selector,
        "signature": call.signature,
        "args": _json_args(call.args),
        "flags": sorted(call.flags),
    }
    if call.inner is not None:
        details["inner"] = call_details(call.inner)
    return details


def _json_args(args: Mapping[str, ArgValue]) -> dict[str, str | bool]:
    def one(value: ArgValue) -> str | bool:
        if isinstance(value, bool | str):
            return value
        if isinstance(value, int):
            return str(value)  # no JSON numbers: the ledger holds amounts as strings
        return "0x" + value.hex()

    return {name: one(value) for name, value in args.items()}
