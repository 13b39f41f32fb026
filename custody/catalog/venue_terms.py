"""How a venue's order type says what it trades: the fields of the sell and buy sides and the
receiver, as an operator declares them.

`Order:sell_token=sellToken:sell_amount=sellAmount+feeAmount:buy_token=buyToken:
buy_amount=buyAmount:receiver=receiver:zero_receiver=wallet` names message fields of the
primary type. A sell amount may be a sum (CoW Protocol takes its fee on top of `sellAmount`);
`zero_receiver=wallet` says that the venue pays the order's signer when the receiver is the zero
address (CoW Protocol does). Without it the zero address is a receiver like any other.

Declarations of the first version named one `notional_field` in a fixed `asset`: the asset an
order actually sold and who it paid were never read. Those are refused at intake, with a
message saying how to declare the type again (`custody venues set`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from custody.names import InvalidName

SPEC_HELP = (
    "like Order:sell_token=sellToken:sell_amount=sellAmount:buy_token=buyToken"
    ":buy_amount=buyAmount:receiver=receiver (see docs/policies.md)"
)
FIELD_TERMS = ("sell_token", "sell_amount", "buy_token", "buy_amount", "receiver")
LEGACY_TERMS = frozenset({"notional_field", "asset"})
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


@dataclass(frozen=True)
class OrderTerms:
    """Names of the message fields that say what an order gives, gets, and pays to whom."""

    sell_token: str
    sell_amount: tuple[str, ...]
    """Summed: what leaves the wallet may be an amount plus a fee."""
    buy_token: str
    buy_amount: str
    receiver: str
    zero_receiver_is_wallet: bool = False

    def fields(self) -> tuple[str, ...]:
        return (self.sell_token, *self.sell_amount, self.buy_token, self.buy_amount, self.receiver)

    def as_dict(self) -> dict[str, str]:
        stored = {
            "sell_token": self.sell_token,
            "sell_amount": "+".join(self.sell_amount),
            "buy_token": self.buy_token,
            "buy_amount": self.buy_amount,
            "receiver": self.receiver,
        }
        if self.zero_receiver_is_wallet:
            stored["zero_receiver"] = "wallet"
        return stored

    @classmethod
    def from_stored(cls, stored: Mapping[str, str]) -> OrderTerms | None:
        """None for a first-version declaration (a notional field only)."""
        if set(stored) & LEGACY_TERMS:
            return None
        return cls(
            sell_token=stored["sell_token"],
            sell_amount=tuple(stored["sell_amount"].split("+")),
            buy_token=stored["buy_token"],
            buy_amount=stored["buy_amount"],
            receiver=stored["receiver"],
            zero_receiver_is_wallet=stored.get("zero_receiver") == "wallet",
        )


def parse_primary_type(spec: str) -> tuple[str, OrderTerms]:
    """`Order:sell_token=…:…:receiver=receiver` -> ("Order", OrderTerms(...))."""
    name, *parts = spec.split(":")
    if not _IDENTIFIER.fullmatch(name):
        raise InvalidName(f"primary type {spec!r}: {name!r} is not an EIP-712 type name")
    options: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if key in LEGACY_TERMS:
            raise InvalidName(
                f"primary type {spec!r}: {key} is no longer accepted (a notional field cannot say"
                f" what an order sells or whom it pays); name the order's fields {SPEC_HELP}"
            )
        if not sep or key not in (*FIELD_TERMS, "zero_receiver") or key in options:
            raise InvalidName(f"primary type {spec!r} must read {SPEC_HELP}")
        options[key] = value
    missing = [term for term in FIELD_TERMS if term not in options]
    if missing:
        raise InvalidName(f"primary type {spec!r} lacks {', '.join(missing)}, {SPEC_HELP}")
    zero = options.pop("zero_receiver", None)
    if zero not in (None, "wallet"):
        raise InvalidName(f"primary type {spec!r}: zero_receiver can only be wallet")
    terms = OrderTerms(
        sell_token=options["sell_token"],
        sell_amount=tuple(options["sell_amount"].split("+")),
        buy_token=options["buy_token"],
        buy_amount=options["buy_amount"],
        receiver=options["receiver"],
        zero_receiver_is_wallet=zero == "wallet",
    )
    for field in terms.fields():
        if not _IDENTIFIER.fullmatch(field):
            raise InvalidName(f"primary type {spec!r}: {field!r} is not a field name")
    if len(set(terms.fields())) != len(terms.fields()):
        # One field cannot be both what is sold and what is bought, or an amount and a receiver.
        raise InvalidName(f"primary type {spec!r} names one field for two terms")
    return name, terms
