"""The reference-price table that `amount_usd_*` rules read: set by operators, ledgered.

A price is USD per whole unit of an asset and that asset's decimals; it is dated now, so the
evaluator's staleness limit counts from when an operator (or a feed using this service) last
vouched for it. Setting a price again replaces it; the ledger keeps every earlier value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic_core import PydanticCustomError
from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.catalog.assets import validate_decimals, validate_symbol
from custody.errors import ValidationFailed
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.policy.prices import format_usd, parse_usd
from custody.store.base import utcnow
from custody.store.models import Asset, Chain, ReferencePrice


class InvalidPrice(ValidationFailed):
    slug = "invalid-price"


@dataclass(frozen=True)
class PriceRow:
    asset: str
    usd_per_unit: str
    decimals: int
    as_of: datetime

    def as_dict(self) -> dict[str, str | int]:
        return {
            "asset": self.asset,
            "usd_per_unit": self.usd_per_unit,
            "decimals": self.decimals,
            "as_of": self.as_of.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }


def known_decimals(session: Session, symbol: str) -> set[int]:
    """The decimals `symbol` has wherever it is known: a chain's native asset or a token."""
    natives = session.execute(
        select(Chain.native_decimals).where(Chain.native_asset == symbol)
    ).scalars()
    tokens = session.execute(select(Asset.decimals).where(Asset.symbol == symbol)).scalars()
    return {*natives, *tokens}


def set_price(
    session: Session, *, symbol: str, usd_per_unit: str, decimals: int, actor: str
) -> PriceRow:
    validate_symbol(symbol)
    validate_decimals(decimals)
    try:
        price = parse_usd(usd_per_unit)
    except PydanticCustomError as exc:
        raise InvalidPrice(f"USD_PER_UNIT {usd_per_unit!r}: {exc.message()}") from None
    known = known_decimals(session, symbol)
    if not known:
        # A typo ("UDSC") would otherwise be a price no rule ever reads, silently.
        raise InvalidPrice(
            f"unknown asset {symbol!r}: not a chain's native asset nor a registered token"
        )
    if decimals not in known:
        # The price is per whole unit: wrong decimals would misvalue every amount by 10**k.
        raise InvalidPrice(
            f"{symbol} has {', '.join(str(d) for d in sorted(known))} decimals, not {decimals}"
        )
    row = PriceRow(symbol, format_usd(price), decimals, utcnow())
    stored = session.get(ReferencePrice, symbol)
    if stored is None:
        session.add(
            ReferencePrice(
                asset=symbol, usd_per_unit=row.usd_per_unit, decimals=decimals, as_of=row.as_of
            )
        )
    else:
        stored.usd_per_unit, stored.decimals, stored.as_of = row.usd_per_unit, decimals, row.as_of
    session.flush()
    ledger.append(session, EventKind.PRICE_SET, actor, dict(row.as_dict()))
    return row


def list_prices(session: Session) -> list[PriceRow]:
    rows = session.execute(select(ReferencePrice).order_by(ReferencePrice.asset)).scalars()
    return [PriceRow(r.asset, r.usd_per_unit, r.decimals, r.as_of) for r in rows]
