"""What the evaluator may look at: a few plain facts, not the payload.

The intake code decodes a payload and states its facts here; rules never see raw bytes or JSON,
so a rule cannot depend on a field the decoder did not vouch for.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestFacts:
    type: str
    wallet: str
    chain: str
    asset: str
    amount: int
    """Base units; 0 for requests that move nothing (e.g. sign_message)."""
    destination: str | None
    client: str | None

    def __post_init__(self) -> None:
        # bool is an int subclass, and a negative amount would pass every `amount_lte` rule.
        if isinstance(self.amount, bool) or not isinstance(self.amount, int) or self.amount < 0:
            raise ValueError("amount must be a non-negative integer of base units")

    def summary(self) -> str:
        """The request in words, as the subject of a decision's reason."""
        return f"{self.type} of {self.amount} {self.asset} from {self.wallet}"
