"""Trades: an EIP-712 order for a registered venue, judged by what it sells, buys and pays to.

The venue declares which message fields hold the sell and buy tokens and amounts and the
receiver (`custody.catalog.venue_terms`). Policy sees what leaves the wallet as the request's
asset and amount (so amount, USD and limit rules judge that), what comes back, and who is paid.

Fails closed on anything the venue did not declare or custody does not know: another chain or
verifying contract (the signature would be valid somewhere custody never agreed to trade), an
undeclared primary type, a first-version declaration that named a notional field only, a
declared field that is missing or of the wrong kind, and a token that is not a registered asset
of the wallet's chain (its value and decimals would be guesses).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from custody.catalog.venue_terms import OrderTerms
from custody.catalog.venues import declared_types
from custody.chains import Amount, EvmAddress, TypedMessage, format_units
from custody.chains.evm.eip712 import canonical_typed_data
from custody.intake.decoders.order_terms import ZERO_ADDRESS, OrderSides, read_order
from custody.intake.draft import Draft
from custody.intake.errors import InvalidBody
from custody.intake.lookups import Lookups
from custody.intake.schemas import describe_validation_error
from custody.store.models import Asset, Chain, Venue, Wallet

PAYLOAD_TYPE = "evm.eip712"


class TradeBody(BaseModel):
    """An EIP-712 order for a registered venue, read through the venue's declared fields."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    type: Literal["trade"]
    wallet: StrictStr
    venue: StrictStr
    typed_data: dict[str, Any] = Field(
        description="EIP-712 typed data: {types, primaryType, domain, message}"
    )


def decode_trade(lookups: Lookups, data: dict[str, Any]) -> Draft:
    try:
        body = TradeBody.model_validate(data)
    except ValidationError as exc:
        raise InvalidBody(f"trade request: {describe_validation_error(exc)}") from None
    wallet = lookups.wallet(body.wallet)
    chain = lookups.chain(wallet.chain_id)
    venue = _venue(lookups, body.venue, chain, wallet)
    typed, message = canonical_typed_data(body.typed_data)
    _check_domain(message, venue, chain, wallet)
    terms = _terms(venue, message.primary_type)
    order = read_order(typed, message.primary_type, terms)
    sells = _registered(lookups, chain, order.sell_token, "sells")
    buys = _registered(lookups, chain, order.buy_token, "buys")
    receiver = _receiver(order, terms, wallet)
    trade = f"{_units(order.sell_amount, sells)} for {_units(order.buy_amount, buys)}"
    return Draft(
        type="trade",
        wallet=wallet,
        chain=chain,
        asset=sells.symbol,
        amount=order.sell_amount,
        destination=None,
        payload={"type": PAYLOAD_TYPE, "typed_data": typed, "venue": venue.name},
        digest=message.digest.prefixed(),
        summary=(
            f"sign {message.primary_type} order on venue {venue.name} ({message.name} "
            f"{message.version}, contract {message.verifying_contract}, chain "
            f"{chain.evm_chain_id}): sells {trade}, paid to {_payee(receiver, wallet)}"
        ),
        contract=str(message.verifying_contract),
        venue=venue.name,
        primary_type=message.primary_type,
        receiver=str(receiver),
        receives_asset=buys.symbol,
        receives_amount=order.buy_amount,
        details={
            "venue": venue.name,
            "primary_type": message.primary_type,
            "domain": typed["domain"],
            "message": typed["message"],
            "gives": _side(sells, order.sell_amount, "+".join(terms.sell_amount)),
            "receives": _side(buys, order.buy_amount, terms.buy_amount),
            "receiver": {
                "address": str(receiver),
                "field": terms.receiver,
                "is_wallet": receiver.lowercase == wallet.address.lower(),
            },
        },
    )


def _venue(lookups: Lookups, name: str, chain: Chain, wallet: Wallet) -> Venue:
    venue = lookups.venue(name)
    if venue is None:
        raise InvalidBody(f"unknown venue {name!r} (see `custody venues list`)")
    if venue.chain_id != chain.id:
        raise InvalidBody(
            f"venue {venue.name} is not on chain {chain.name} of wallet {wallet.name}"
        )
    return venue


def _check_domain(message: TypedMessage, venue: Venue, chain: Chain, wallet: Wallet) -> None:
    if message.chain_id.value != chain.evm_chain_id:
        raise InvalidBody(
            f"typed_data.domain.chainId is {message.chain_id}, but wallet {wallet.name} is on "
            f"chain {chain.name} ({chain.evm_chain_id})"
        )
    if str(message.verifying_contract) != venue.verifying_contract:
        raise InvalidBody(
            f"typed_data.domain.verifyingContract is {message.verifying_contract}, not venue "
            f"{venue.name}'s {venue.verifying_contract}"
        )


def _terms(venue: Venue, primary: str) -> OrderTerms:
    declared = declared_types(venue)
    if primary not in declared:
        raise InvalidBody(
            f"venue {venue.name} does not accept {primary} orders "
            f"(declared: {', '.join(sorted(declared))})"
        )
    terms = declared[primary]
    if terms is None:
        raise InvalidBody(
            f"venue {venue.name} declares {primary} by a notional field only, which cannot say "
            f"what an order sells or whom it pays: declare it anew with `custody venues set "
            f"{venue.name} --primary-type {primary}:sell_token=…:sell_amount=…:buy_token=…"
            ":buy_amount=…:receiver=…` (see docs/policies.md)"
        )
    return terms


def _registered(lookups: Lookups, chain: Chain, token: EvmAddress, side: str) -> Asset:
    asset = lookups.asset_by_contract(chain.id, str(token))
    if asset is None:
        # Without a registered asset no limit, allowlist or USD price can speak for the token.
        raise InvalidBody(
            f"the order {side} token {token}, which is not a registered asset on chain "
            f"{chain.name} (see `custody assets add`): refused"
        )
    return asset


def _receiver(order: OrderSides, terms: OrderTerms, wallet: Wallet) -> EvmAddress:
    if order.receiver == ZERO_ADDRESS and terms.zero_receiver_is_wallet:
        # The venue pays the order's signer when no receiver is named (zero_receiver=wallet).
        return EvmAddress.parse(wallet.address, what="wallet address")
    return order.receiver


def _units(amount: Amount, asset: Asset) -> str:
    return f"{format_units(amount.value, asset.decimals)} {asset.symbol} ({amount} base units)"


def _payee(receiver: EvmAddress, wallet: Wallet) -> str:
    if receiver.lowercase == wallet.address.lower():
        return f"{receiver} (the wallet itself)"
    return f"{receiver} (not the wallet)"


def _side(asset: Asset, amount: Amount, field: str) -> dict[str, Any]:
    return {
        "asset": asset.symbol,
        "contract": asset.contract,
        "decimals": asset.decimals,
        "amount": str(amount),
        "field": field,
    }
