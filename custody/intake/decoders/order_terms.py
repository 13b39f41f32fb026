"""An order's economic fields, read from canonical typed data as its venue declared them.

Every declared field must exist in the primary type with the right kind: token fields and the
receiver are `address`, amounts unsigned integers. A declaration that does not fit the order is
refused, never guessed around: the fields read here are what policy judges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from custody.catalog.venue_terms import OrderTerms
from custody.chains import Amount, EvmAddress
from custody.intake.errors import InvalidBody

_UINT = re.compile(r"uint([0-9]{1,3})")
ZERO_ADDRESS = EvmAddress(bytes(20))


@dataclass(frozen=True)
class OrderSides:
    sell_token: EvmAddress
    sell_amount: Amount
    buy_token: EvmAddress
    buy_amount: Amount
    receiver: EvmAddress
    """As the order names it; the zero address may stand for the signer (`zero_receiver`)."""


def read_order(typed: dict[str, Any], primary: str, terms: OrderTerms) -> OrderSides:
    reader = _Reader(typed, primary)
    total = sum(reader.uint(name, "sell amount") for name in terms.sell_amount)
    if total >= 2**256:
        raise InvalidBody(f"{primary}: the sell amount {'+'.join(terms.sell_amount)} overflows")
    return OrderSides(
        sell_token=reader.address(terms.sell_token, "sell token"),
        sell_amount=Amount(total),
        buy_token=reader.address(terms.buy_token, "buy token"),
        buy_amount=Amount(reader.uint(terms.buy_amount, "buy amount")),
        receiver=reader.address(terms.receiver, "receiver"),
    )


class _Reader:
    def __init__(self, typed: dict[str, Any], primary: str) -> None:
        self.primary = primary
        self.kinds = {entry["name"]: entry["type"] for entry in typed["types"][primary]}
        self.message: dict[str, Any] = typed["message"]

    def _kind(self, field: str, role: str) -> str:
        if field not in self.kinds:
            raise InvalidBody(
                f"{self.primary} has no field {field}, which the venue declares as its {role}"
            )
        return str(self.kinds[field])

    def uint(self, field: str, role: str) -> int:
        kind = self._kind(field, role)
        if not _UINT.fullmatch(kind):
            raise InvalidBody(
                f"{self.primary}.{field} is {kind}; the {role} must be an unsigned integer"
            )
        # Canonical typed data spells integers as decimal strings (validated against the type).
        return int(self.message[field])

    def address(self, field: str, role: str) -> EvmAddress:
        kind = self._kind(field, role)
        if kind != "address":
            raise InvalidBody(f"{self.primary}.{field} is {kind}; the {role} must be an address")
        return EvmAddress.parse(self.message[field], what=f"message.{field}")
