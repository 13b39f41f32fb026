"""What the evaluator may look at: a few plain facts, not the payload.

The intake code decodes a payload and states its facts here; rules never see raw bytes or JSON,
so a rule cannot depend on a field the decoder did not vouch for. The fields after `client` are
optional so the withdrawal callers can keep stating only the seven they know; their defaults are
"nothing known", which no contract, method, venue or allow_* rule matches.

A trade states both sides: `asset` and `amount` are what leaves the wallet (so amount, USD and
limit rules judge that), `receives_asset` and `receives_amount` what comes back, and `receiver`
who the venue pays. A trade with no known receiver is permitted by no rule (compiled.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NotRequired

from pydantic import TypeAdapter
from typing_extensions import TypedDict

from custody.chains.values import Amount
from custody.policy.calls import CallFlag

_FLAGS = frozenset(CallFlag)


class _StoredFacts(TypedDict):
    """`Request.facts` as `to_dict` writes it; rows written before a key existed lack it."""

    type: str
    wallet: str
    chain: str
    asset: str
    amount: Amount
    destination: NotRequired[str | None]
    client: NotRequired[str | None]
    contract: NotRequired[str | None]
    method_selector: NotRequired[str | None]
    call_flags: NotRequired[list[str]]
    venue: NotRequired[str | None]
    primary_type: NotRequired[str | None]
    wallet_address: NotRequired[str | None]
    receiver: NotRequired[str | None]
    receives_asset: NotRequired[str | None]
    receives_amount: NotRequired[Amount | None]
    fee: NotRequired[Amount | None]
    fee_rate: NotRequired[Amount | None]
    destinations: NotRequired[list[str]]


_STORED_FACTS = TypeAdapter(_StoredFacts)


@dataclass(frozen=True, slots=True)
class RequestFacts:
    type: str
    wallet: str
    chain: str
    asset: str
    amount: Amount
    """Base units; 0 for requests that move nothing (e.g. sign_message); what a trade sells."""
    destination: str | None
    """Who receives the asset: the recipient of a withdrawal or ERC-20 transfer, or the spender of
    an approval."""
    client: str | None
    contract: str | None = None
    """The called contract (contract_call) or the verifying contract (trade)."""
    method_selector: str | None = None
    """`0x` and 8 lower-case hex digits."""
    call_flags: frozenset[str] = frozenset()
    """Values of `CallFlag` the decoder raised."""
    venue: str | None = None
    primary_type: str | None = None
    wallet_address: str | None = None
    """The signing wallet's own address, which a trade's receiver is compared with."""
    receiver: str | None = None
    """Who a trade pays what it buys (the venue's declared receiver field)."""
    receives_asset: str | None = None
    receives_amount: Amount | None = None
    """Base units of `receives_asset` that a trade buys (at least, for a limit order)."""
    fee: Amount | None = None
    """What the transaction pays miners, in base units of `asset`, where it is fixed by what is
    signed (a Bitcoin PSBT's inputs minus outputs); not counted in `amount`."""
    fee_rate: Amount | None = None
    """The fee per virtual byte of the signed transaction (sat/vB, rounded up), with `fee`."""
    destinations: tuple[str, ...] = ()
    """Every address a request pays when it pays several (a Bitcoin batch; change excluded);
    `destination` is then the first. Empty: the request pays `destination` alone."""

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Amount):
            # A bare int would compare with no bound; Amount also refuses negative and bool.
            raise ValueError("amount must be an Amount of base units")
        if self.receives_amount is not None and not isinstance(self.receives_amount, Amount):
            raise ValueError("receives_amount must be an Amount of base units")
        if self.fee is not None and not isinstance(self.fee, Amount):
            raise ValueError("fee must be an Amount of base units")
        if self.fee_rate is not None and not isinstance(self.fee_rate, Amount):
            raise ValueError("fee_rate must be an Amount (sat/vB)")
        if self.destinations and (
            not isinstance(self.destinations, tuple) or self.destinations[0] != self.destination
        ):
            # One list for every rule to judge: `destination` alone must never differ from it.
            raise ValueError("destinations must be a tuple starting with destination")
        if not isinstance(self.call_flags, frozenset) or not self.call_flags <= _FLAGS:
            # An unknown flag would be a decoder's warning that no allow_* key can ever answer.
            raise ValueError(f"call_flags must be a frozenset of {sorted(_FLAGS)}")
        selector = self.method_selector
        if selector is not None and (len(selector) != 10 or selector != selector.lower()):
            raise ValueError("method_selector must be 0x and 8 lower-case hex digits")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (amount as a decimal string), for storing with the request."""
        return {
            "type": self.type,
            "wallet": self.wallet,
            "chain": self.chain,
            "asset": self.asset,
            "amount": str(self.amount),
            "destination": self.destination,
            "client": self.client,
            "contract": self.contract,
            "method_selector": self.method_selector,
            "call_flags": sorted(self.call_flags),
            "venue": self.venue,
            "primary_type": self.primary_type,
            "wallet_address": self.wallet_address,
            "receiver": self.receiver,
            "receives_asset": self.receives_asset,
            "receives_amount": None if self.receives_amount is None else str(self.receives_amount),
            **({} if self.fee is None else {"fee": str(self.fee)}),
            **({} if self.fee_rate is None else {"fee_rate": str(self.fee_rate)}),
            **({"destinations": list(self.destinations)} if self.destinations else {}),
        }

    @classmethod
    def from_json(cls, column: str) -> RequestFacts:
        """The one reader of `Request.facts` (the limit counter and the signer's re-check)."""
        data = _STORED_FACTS.validate_json(column)
        return cls(
            type=data["type"],
            wallet=data["wallet"],
            chain=data["chain"],
            asset=data["asset"],
            amount=data["amount"],
            destination=data.get("destination"),
            client=data.get("client"),
            contract=data.get("contract"),
            method_selector=data.get("method_selector"),
            call_flags=frozenset(data.get("call_flags", ())),
            venue=data.get("venue"),
            primary_type=data.get("primary_type"),
            wallet_address=data.get("wallet_address"),
            receiver=data.get("receiver"),
            receives_asset=data.get("receives_asset"),
            receives_amount=data.get("receives_amount"),
            fee=data.get("fee"),
            fee_rate=data.get("fee_rate"),
            destinations=tuple(data.get("destinations", ())),
        )

    @property
    def every_destination(self) -> tuple[str, ...]:
        """Every address the request pays: what destination rules judge."""
        if self.destinations:
            return self.destinations
        return () if self.destination is None else (self.destination,)

    def summary(self) -> str:
        """The request in words, as the subject of a decision's reason."""
        text = f"{self.type} of {self.amount} {self.asset} from {self.wallet}"
        if self.receives_asset is not None:
            text += f" for {self.receives_amount} {self.receives_asset}"
        return text

    @property
    def pays_wallet(self) -> bool:
        """Whether a trade pays the wallet that signs it (addresses compare case-insensitively)."""
        return (
            self.receiver is not None
            and self.wallet_address is not None
            and self.receiver.lower() == self.wallet_address.lower()
        )
