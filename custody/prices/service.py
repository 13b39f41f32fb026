"""The reference-price table that `amount_usd_*` rules read: set by operators, ledgered.

A price is USD per whole unit of one asset on one chain (a token by its contract, the native
asset by its chain) and that asset's decimals; it is dated now, so the evaluator's staleness
limit counts from when an operator (or a feed using this service) last vouched for it. Setting
a price again replaces it; the ledger keeps every earlier value.

A symbol is not an asset: USDC on two chains is two contracts, perhaps with other decimals. So
`set_price` resolves a symbol to the one place it names, or refuses and names the choices.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime

from pydantic_core import PydanticCustomError
from sqlalchemy import CompoundSelect, select, union_all
from sqlalchemy.orm import Session

from custody.catalog.assets import validate_decimals, validate_symbol
from custody.catalog.chains import chain_by_name
from custody.errors import ValidationFailed
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.policy.prices import PriceKey, UsdPrice, format_usd, parse_usd
from custody.prices.places import Place, places_of
from custody.store.base import utcnow
from custody.store.models import Asset, Chain, ReferencePrice


class InvalidPrice(ValidationFailed):
    slug = "invalid-price"


@dataclass(frozen=True)
class PriceRow:
    chain: str
    asset: str
    contract: str | None
    """None for the chain's native asset."""
    usd_per_unit: str
    decimals: int
    as_of: datetime

    def as_dict(self) -> dict[str, str | int | None]:
        return {
            "chain": self.chain,
            "asset": self.asset,
            "contract": self.contract,
            "usd_per_unit": self.usd_per_unit,
            "decimals": self.decimals,
            "as_of": self.as_of.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }


def set_price(
    session: Session,
    *,
    symbol: str,
    usd_per_unit: str,
    decimals: int,
    actor: str,
    chain: str | None = None,
) -> PriceRow:
    """Price `symbol` on `chain`; without a chain, only where the symbol names one asset."""
    validate_symbol(symbol)
    validate_decimals(decimals)
    try:
        price = parse_usd(usd_per_unit)
    except PydanticCustomError as exc:
        raise InvalidPrice(f"USD_PER_UNIT {usd_per_unit!r}: {exc.message()}") from None
    place = _one_place(session, symbol, chain)
    if decimals != place.decimals:
        # The price is per whole unit: wrong decimals would misvalue every amount by 10**k.
        raise InvalidPrice(
            f"{symbol} on {place.chain.name} has {place.decimals} decimals, not {decimals}"
        )
    row = PriceRow(place.chain.name, symbol, place.contract, format_usd(price), decimals, utcnow())
    _store(session, place, row)
    ledger.append(session, EventKind.PRICE_SET, actor, dict(row.as_dict()))
    return row


def _one_place(session: Session, symbol: str, chain: str | None) -> Place:
    found = places_of(session, symbol)
    if not found:
        # A typo ("UDSC") would otherwise be a price no rule ever reads, silently.
        raise InvalidPrice(
            f"unknown asset {symbol!r}: not a chain's native asset nor a registered token"
        )
    if chain is not None:
        wanted = chain_by_name(session, chain)
        found = [place for place in found if place.chain.id == wanted.id]
        if not found:
            raise InvalidPrice(f"{symbol} is not known on chain {chain}")
    if len(found) > 1:
        choices = "; ".join(place.describe() for place in found)
        raise InvalidPrice(
            f"{symbol} names {len(found)} assets ({choices}): choose one with --chain"
        )
    return found[0]


def _store(session: Session, place: Place, row: PriceRow) -> None:
    stored = session.execute(
        select(ReferencePrice).where(
            ReferencePrice.chain_id == place.chain.id, ReferencePrice.asset == row.asset
        )
    ).scalar_one_or_none()
    if stored is None:
        stored = ReferencePrice(chain_id=place.chain.id, asset=row.asset)
        session.add(stored)
    stored.contract = row.contract
    stored.usd_per_unit, stored.decimals, stored.as_of = row.usd_per_unit, row.decimals, row.as_of
    session.flush()


def list_prices(session: Session) -> list[PriceRow]:
    rows = session.execute(
        select(ReferencePrice, Chain)
        .join(Chain, Chain.id == ReferencePrice.chain_id)
        .order_by(ReferencePrice.asset, Chain.name)
    )
    return [
        PriceRow(c.name, p.asset, p.contract, p.usd_per_unit, p.decimals, p.as_of) for p, c in rows
    ]


def _prices_statement() -> CompoundSelect[str, str, str, int, datetime]:
    """Every price that still names its catalog asset (the chain's native one, or a token by
    contract, symbol and decimals). Built once: every decision (intake's, and the signer's for a
    request and for each request its limits count) runs it, and building a statement and its
    cache key cost more than running it. Columns, not rows as objects, for the same reason."""
    columns = (
        Chain.name,
        ReferencePrice.asset,
        ReferencePrice.usd_per_unit,
        ReferencePrice.decimals,
        ReferencePrice.as_of,
    )
    natives = (
        select(*columns)
        .join(Chain, Chain.id == ReferencePrice.chain_id)
        .where(
            ReferencePrice.contract.is_(None),
            ReferencePrice.asset == Chain.native_asset,
            ReferencePrice.decimals == Chain.native_decimals,
        )
    )
    tokens = (
        select(*columns)
        .join(Chain, Chain.id == ReferencePrice.chain_id)
        .join(
            Asset,
            (Asset.chain_id == ReferencePrice.chain_id)
            & (Asset.contract == ReferencePrice.contract)
            & (Asset.symbol == ReferencePrice.asset)
            & (Asset.decimals == ReferencePrice.decimals),
        )
    )
    return union_all(natives, tokens)


_PRICES = _prices_statement()


def reference_table(session: Session) -> dict[PriceKey, UsdPrice]:
    """The prices an evaluation may use, keyed by asset and chain as requests name them.

    A price counts only while it still names the asset the catalog knows by that symbol on
    that chain (the native asset, or the token at that contract with those decimals); a row
    that no longer agrees values nothing, and USD rules that need it deny.
    """
    return {
        PriceKey(chain, asset): _parsed(usd_per_unit, decimals, as_of)
        for chain, asset, usd_per_unit, decimals, as_of in session.execute(_PRICES)
    }


@functools.lru_cache(maxsize=1024)
def _parsed(usd_per_unit: str, decimals: int, as_of: datetime) -> UsdPrice:
    """A stored price, parsed once per process for as long as it is the same text (UsdPrice is
    immutable)."""
    return UsdPrice.parse(usd_per_unit, decimals, as_of)
