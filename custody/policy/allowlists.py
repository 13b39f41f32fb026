"""Allowlists: destinations by (chain, address), some usable only after an activation delay.

A delayed entry is active once `delay` has passed since it was listed: since the policy version
was applied, or since an earlier version first listed it (`EvaluationContext.listed_since`, kept by
the store). Until then it is treated as absent, both for `destination_in` (not allowed yet) and for
`destination_not_in` (still caught by the deny rule). Without a known time it stays inactive.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from custody.policy.context import UNKNOWN, EvaluationContext
from custody.policy.facts import RequestFacts
from custody.policy.schema import AllowlistEntry

Key = tuple[str, str]
"""(chain, lower-case address): EVM addresses compare case-insensitively."""


def entry_active(
    delay_seconds: int | None, listed_since: datetime | None, now: datetime | None
) -> bool:
    """Whether an entry with this activation delay, listed at `listed_since`, is usable at `now`."""
    if not delay_seconds:
        return True
    if listed_since is None or now is None:
        return False
    return now >= listed_since + timedelta(seconds=delay_seconds)


def split_entries(entries: tuple[AllowlistEntry, ...]) -> tuple[frozenset[Key], dict[Key, int]]:
    """Immediate keys, and delayed keys with their delay (an immediate listing wins)."""
    immediate = frozenset((e.chain, e.address.lowercase) for e in entries if not e.activation_delay)
    delayed: dict[Key, int] = {}
    for entry in entries:
        key = (entry.chain, entry.address.lowercase)
        if entry.activation_delay and key not in immediate:
            delayed[key] = min(entry.activation_delay, delayed.get(key, entry.activation_delay))
    return immediate, delayed


@dataclass(frozen=True, slots=True)
class Listing:
    """The entries of the allowlists a rule names, as compiled once per policy."""

    names: tuple[str, ...]
    entries: frozenset[Key]
    delayed: tuple[tuple[str, Mapping[Key, int]], ...]

    def contains(self, chain: str, address: str, context: EvaluationContext) -> bool:
        key = (chain, address.lower())
        if key in self.entries:
            return True
        return any(
            entry_active(
                delayed[key],
                context.listed_since.get((name, *key), context.policy_applied_at),
                context.now,
            )
            for name, delayed in self.delayed
            if key in delayed
        )

    def pending(self, chain: str, address: str) -> bool:
        key = (chain, address.lower())
        return any(key in delayed for _, delayed in self.delayed)

    def words(self, listed: bool) -> str:
        """`is on allowlist a` / `is on none of allowlists a, b`."""
        names = ", ".join(self.names)
        if len(self.names) == 1:
            return f"{'is on' if listed else 'is not on'} allowlist {names}"
        return f"{'is on one of' if listed else 'is on none of'} allowlists {names}"


@dataclass(frozen=True, slots=True)
class DestinationOnAllowlists:
    """The destination is (or, negated, is not) on any of the named allowlists for its chain.

    A request without a destination is on no allowlist: it never passes `destination_in`, and it
    does match `destination_not_in`, so a deny rule written that way also catches it.

    A request paying several addresses (a Bitcoin batch) is judged on every one of them, so
    that one listed address never carries unlisted ones: in a rule that permits (allow,
    require_approvals) the condition holds only when it holds for EVERY destination; in a deny
    rule it holds when it holds for ANY. Either way a batch is treated no better than its worst
    destination would be alone.
    """

    listing: Listing
    negate: bool
    every: bool = True
    """True in permitting rules (every destination must satisfy), False in deny rules (any)."""

    def __call__(self, facts: RequestFacts, context: EvaluationContext = UNKNOWN) -> bool:
        destinations = facts.every_destination
        if not destinations:
            return self.negate
        holding = (self._holds(facts.chain, d, context) for d in destinations)
        return all(holding) if self.every else any(holding)

    def _holds(self, chain: str, destination: str, context: EvaluationContext) -> bool:
        return self.listing.contains(chain, destination, context) != self.negate

    def explain(self, facts: RequestFacts, context: EvaluationContext) -> str | None:
        names = ", ".join(self.listing.names)
        destinations = facts.every_destination
        if not destinations:
            return f"has no destination, so is on no allowlist ({names})"
        if not self.every:
            # the destinations that made a deny rule hold
            destinations = (
                tuple(d for d in destinations if self._holds(facts.chain, d, context))
                or destinations
            )
        if self.negate and any(self.listing.pending(facts.chain, d) for d in destinations):
            plural = "" if len(self.listing.names) == 1 else "s"
            where = f"is on allowlist{plural} {names} but not active yet (activation delay)"
        else:
            where = self.listing.words(listed=not self.negate)
        if len(destinations) == 1:
            return f"goes to {destinations[0]}, which {where}"
        each = "each of which" if self.every else "of which each"
        return f"goes to {', '.join(destinations)}, {each} {where}"
