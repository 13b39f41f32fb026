"""USD values from a reference-price table, exact to the cent and beyond.

Prices arrive as decimal strings and are kept as `Fraction`s: a float would make "worth at most
250000.00 USD" depend on rounding. A price older than the table's `max_age`, or one dated in the
future (a broken feed or clock), is no price at all: rules that need it fail closed.

Prices are per asset *on a chain*: USDC on two chains is two contracts, perhaps with other
decimals or no peg at all, and a price set for one must never value the other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Annotated, NamedTuple

from pydantic import BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

_USD = re.compile(r"(0|[1-9][0-9]{0,17})(?:\.([0-9]{1,18}))?")


def parse_usd(value: object) -> Fraction:
    """`"250000.00"` to an exact fraction; no sign, exponent, separators or YAML numbers."""
    match = _USD.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise PydanticCustomError("not_usd", 'not a USD amount string like "250000.00"')
    whole, cents = match[1], match[2] or ""
    return Fraction(int(whole + cents), 10 ** len(cents))


def format_usd(value: Fraction) -> str:
    """Two decimals at least, more only when the value has them (so it reads back the same)."""
    places = 2
    while (value * 10**places).denominator != 1:
        places += 1
    scaled = int(value * 10**places)
    return f"{scaled // 10**places}.{scaled % 10**places:0{places}d}"


UsdAmount = Annotated[
    Fraction, BeforeValidator(parse_usd), PlainSerializer(format_usd, return_type=str)
]


def _aware(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        # A naive time is "local" to whoever wrote it; comparing it with UTC would be a guess.
        raise ValueError(f"{what} must be timezone-aware")
    return moment


@dataclass(frozen=True, slots=True)
class UsdPrice:
    """USD per whole unit of an asset (e.g. per ETH), and the asset's decimals (18 for ETH)."""

    usd_per_unit: Fraction
    decimals: int
    as_of: datetime

    def __post_init__(self) -> None:
        if self.usd_per_unit < 0 or not 0 <= self.decimals <= 77:
            raise ValueError("a price is non-negative with 0 to 77 decimals")
        _aware(self.as_of, "as_of")

    @classmethod
    def parse(cls, usd_per_unit: str, decimals: int, as_of: datetime) -> UsdPrice:
        try:
            price = parse_usd(usd_per_unit)
        except PydanticCustomError as error:
            raise ValueError(f"price {usd_per_unit!r}: {error.message()}") from None
        return cls(price, decimals, as_of)

    def value_of(self, amount: int) -> Fraction:
        price = self.usd_per_unit
        return Fraction(amount * price.numerator, price.denominator * 10**self.decimals)


class PriceKey(NamedTuple):
    """One asset on one chain. The catalog keeps a symbol unique per chain (no token takes the
    native symbol, no two tokens one symbol), so this names exactly one contract, or the
    chain's native asset; the store resolves it from the contract when it builds the table."""

    chain: str
    asset: str

    def __str__(self) -> str:
        return f"{self.asset} on {self.chain}"


@dataclass(frozen=True, slots=True)
class ReferencePrices:
    """The price table an evaluation may use; `max_age` has no default, staleness is a choice."""

    prices: Mapping[PriceKey, UsdPrice]
    max_age: timedelta

    def __post_init__(self) -> None:
        if self.max_age <= timedelta(0):
            raise ValueError("max_age must be positive")
        if not all(isinstance(key, PriceKey) for key in self.prices):
            # A bare symbol would be a price for that symbol on every chain: the bug this type ends.
            raise ValueError("prices must be keyed by PriceKey(chain, asset)")

    def usd_value(self, key: PriceKey, amount: int, now: datetime | None) -> Fraction | str:
        """The value, or why there is none (a sentence naming the asset and its chain)."""
        price = self.prices.get(key)
        if price is None:
            return f"no USD reference price for {key}"
        if now is None:
            return f"no evaluation time to judge the age of the {key} price"
        age = now - price.as_of
        if age > self.max_age:
            return f"USD price of {key} is stale (as of {price.as_of.isoformat()}, {age} old)"
        if age < timedelta(0):
            return f"USD price of {key} is dated in the future ({price.as_of.isoformat()})"
        return price.value_of(amount)
