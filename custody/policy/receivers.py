"""Who a trade pays: the wallet itself, or an address on an allowlist that the rule names.

An order's receiver gets what the order buys. Whoever can submit orders could otherwise sell
the wallet's assets to themselves: an order signed by the wallet but paying an attacker is a
withdrawal in disguise. So every rule that permits (allow, require_approvals) carries a gate,
as it carries one for dangerous calls: a trade passes it only if it pays the wallet itself, or
if the rule says `receiver_in: <allowlists>` and the receiver is listed there. A trade whose
receiver is not known (facts stored before receivers were read) passes no gate: fail closed.
"""

from __future__ import annotations

from dataclasses import dataclass

from custody.policy.allowlists import Listing
from custody.policy.context import UNKNOWN, EvaluationContext
from custody.policy.facts import RequestFacts

TRADE = "trade"


@dataclass(frozen=True, slots=True)
class ReceiverIn:
    """`receiver_in`: a trade that pays the wallet itself or an address on the named lists."""

    listing: Listing

    def __call__(self, facts: RequestFacts, context: EvaluationContext = UNKNOWN) -> bool:
        if facts.receiver is None:
            return False
        return facts.pays_wallet or self.listing.contains(facts.chain, facts.receiver, context)

    def explain(self, facts: RequestFacts, context: EvaluationContext) -> str | None:
        if facts.receiver is None:
            return f"pays no known receiver, so none on {', '.join(self.listing.names)}"
        if facts.pays_wallet:
            return "pays the wallet itself"
        listed = self.listing.contains(facts.chain, facts.receiver, context)
        return f"pays {facts.receiver}, which {self.listing.words(listed)}"


@dataclass(frozen=True, slots=True)
class PaysWallet:
    """The gate of permitting rules without `receiver_in`: a trade must pay its own wallet."""

    def __call__(self, facts: RequestFacts, context: EvaluationContext = UNKNOWN) -> bool:
        return facts.type != TRADE or facts.pays_wallet

    def explain(self, facts: RequestFacts, context: EvaluationContext) -> str | None:
        return "pays the wallet itself" if facts.type == TRADE else None


def foreign_receiver(facts: RequestFacts) -> str | None:
    """Why no rule without `receiver_in` could permit this trade, for the default deny's reason."""
    if facts.type != TRADE or facts.pays_wallet:
        return None
    if facts.receiver is None:
        return "the trade's receiver is not known"
    return (
        f"the trade pays {facts.receiver}, not the wallet; a permitting rule must say"
        " receiver_in: <an allowlist listing it>"
    )
