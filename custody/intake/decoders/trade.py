"""Trades: an EIP-712 order for a registered venue, its notional read from a declared field.

Fails closed on anything the venue did not declare: another chain or verifying contract (the
signature would be valid somewhere custody never agreed to trade), an undeclared primary type,
or an order whose notional field is missing or not an unsigned integer.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from sqlalchemy.orm import Session

from custody.catalog.assets import decimals_on_chain
from custody.catalog.chains import chain_by_id
from custody.catalog.venues import declared_types, find_venue
from custody.chains import Amount, format_units
from custody.chains.evm.eip712 import canonical_typed_data
from custody.intake.draft import Draft
from custody.intake.errors import InvalidBody
from custody.intake.schemas import describe_validation_error
from custody.wallets.repository import wallet_by_name

PAYLOAD_TYPE = "evm.eip712"
_UINT = re.compile(r"uint([0-9]{1,3})")


class TradeBody(BaseModel):
    """An EIP-712 order for a registered venue; its notional is read from a declared field."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    type: Literal["trade"]
    wallet: StrictStr
    venue: StrictStr
    typed_data: dict[str, Any] = Field(
        description="EIP-712 typed data: {types, primaryType, domain, message}"
    )


def decode_trade(session: Session, data: dict[str, Any]) -> Draft:
    try:
        body = TradeBody.model_validate(data)
    except ValidationError as exc:
        raise InvalidBody(f"trade request: {describe_validation_error(exc)}") from None
    wallet = wallet_by_name(session, body.wallet)
    chain = chain_by_id(session, wallet.chain_id)
    venue = find_venue(session, body.venue)
    if venue is None:
        raise InvalidBody(f"unknown venue {body.venue!r} (see `custody venues list`)")
    if venue.chain_id != chain.id:
        raise InvalidBody(
            f"venue {venue.name} is not on chain {chain.name} of wallet {wallet.name}"
        )

    typed, message = canonical_typed_data(body.typed_data)
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
    declared = declared_types(venue)
    primary = message.primary_type
    if primary not in declared:
        raise InvalidBody(
            f"venue {venue.name} does not accept {primary} orders "
            f"(declared: {', '.join(sorted(declared))})"
        )
    field, asset = declared[primary]["notional_field"], declared[primary]["asset"]
    notional = _notional(typed, primary, field)

    decimals = decimals_on_chain(session, chain, asset)
    shown = f"{notional} base units of {asset}"
    if decimals is not None:
        shown = f"{format_units(notional, decimals)} {asset} ({notional} base units)"
    return Draft(
        type="trade",
        wallet=wallet,
        chain=chain,
        asset=asset,
        amount=Amount(notional),
        destination=None,
        payload={"type": PAYLOAD_TYPE, "typed_data": typed, "venue": venue.name},
        digest=message.digest.prefixed(),
        summary=(
            f"sign {primary} order on venue {venue.name} ({message.name} {message.version}, "
            f"contract {message.verifying_contract}, chain {chain.evm_chain_id}): "
            f"{field} {shown}"
        ),
        contract=str(message.verifying_contract),
        venue=venue.name,
        primary_type=primary,
        details={
            "venue": venue.name,
            "primary_type": primary,
            "domain": typed["domain"],
            "message": typed["message"],
            "notional": {"field": field, "asset": asset, "amount": str(notional)},
        },
    )


def _notional(typed: dict[str, Any], primary: str, field: str) -> int:
    kinds = {entry["name"]: entry["type"] for entry in typed["types"][primary]}
    if field not in kinds:
        raise InvalidBody(f"{primary} has no field {field}, which the venue declares as notional")
    if not _UINT.fullmatch(kinds[field]):
        raise InvalidBody(
            f"{primary}.{field} is {kinds[field]}; the notional must be an unsigned integer"
        )
    # Canonical typed data spells integers as decimal strings (the digest check vouched for it).
    return int(typed["message"][field])
