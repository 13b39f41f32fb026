"""What an evaluation may know beyond the request: the time, prices and when entries were listed.

Everything here is passed in; `evaluate` never reads a clock or a database. Without a context
(the two-argument `evaluate(policy, facts)`), nothing is known: rules with time windows or USD
amounts end in a Deny and allowlist entries with an activation delay count as absent. That is the
fail-closed reading of "we do not know".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from custody.policy.prices import ReferencePrices

ListedKey = tuple[str, str, str]
"""(allowlist name, chain, lower-case address)."""


class Undecidable(Exception):
    """A match key cannot be judged (missing or stale price, no time): the evaluation denies."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class EvaluationContext:
    now: datetime | None
    """Aware time of the evaluation; None only in the empty context."""
    prices: ReferencePrices | None = None
    policy_applied_at: datetime | None = None
    """When the evaluated policy version was applied: activation delays count from it."""
    listed_since: Mapping[ListedKey, datetime] = field(default_factory=dict)
    """Entries that were already listed by earlier versions, with when they were first listed;
    their delay counts from then rather than from `policy_applied_at`."""

    def __post_init__(self) -> None:
        for what, moment in (("now", self.now), ("policy_applied_at", self.policy_applied_at)):
            if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
                raise ValueError(f"{what} must be timezone-aware")

    def require_now(self, why: str) -> datetime:
        if self.now is None:
            raise Undecidable(f"no evaluation time to judge {why}")
        return self.now


UNKNOWN = EvaluationContext(now=None)
"""The context of an evaluation that was told nothing."""
