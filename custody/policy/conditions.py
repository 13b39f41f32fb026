"""Predicates that need more than the request: USD prices, the time, call flags.

USD and time predicates raise `Undecidable` when the context lacks what they need; the
evaluator turns that into a Deny naming the rule and the reason, never into "did not match",
which would let evaluation fall through to a later, more permissive rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from zoneinfo import ZoneInfo

from custody.policy.context import UNKNOWN, EvaluationContext, Undecidable
from custody.policy.facts import RequestFacts
from custody.policy.prices import PriceKey, format_usd
from custody.policy.timewindow import TimeWindow


@dataclass(frozen=True, slots=True)
class UsdBound:
    compare: Callable[[Fraction, Fraction], bool]
    bound: Fraction
    words: str

    def value(self, facts: RequestFacts, context: EvaluationContext) -> Fraction:
        if context.prices is None:
            raise Undecidable(f"no USD reference prices to value {facts.asset}")
        key = PriceKey(facts.chain, facts.asset)
        value = context.prices.usd_value(key, facts.amount.value, context.now)
        if isinstance(value, str):
            raise Undecidable(value)
        return value

    def __call__(self, facts: RequestFacts, context: EvaluationContext = UNKNOWN) -> bool:
        return self.compare(self.value(facts, context), self.bound)

    def explain(self, facts: RequestFacts, context: EvaluationContext) -> str | None:
        worth = self.value(facts, context)
        # Rounded down to the cent for reading only; the comparison above used the exact value.
        shown = format_usd(Fraction(int(worth * 100), 100))
        return f"is worth {shown} USD, {self.words} {format_usd(self.bound)} USD"


@dataclass(frozen=True, slots=True)
class InTimeWindow:
    window: TimeWindow
    zone: ZoneInfo

    def __call__(self, facts: RequestFacts, context: EvaluationContext = UNKNOWN) -> bool:
        return self.window.contains(context.require_now("the time window"))

    def explain(self, facts: RequestFacts, context: EvaluationContext) -> str | None:
        now = context.require_now("the time window").astimezone(self.zone)
        return f"at {now:%a %H:%M} {self.window.tz}, within {self.window.describe()}"


@dataclass(frozen=True, slots=True)
class FlagsPermitted:
    """A permitting rule applies to a flagged call only if it names every flag it carries.

    Added to every allow and require_approvals rule, so delegatecall, unknown methods and
    unlimited approvals are denied unless a rule allows them by name (DESIGN.md invariant 2).
    """

    allowed: frozenset[str]

    def __call__(self, facts: RequestFacts, context: EvaluationContext = UNKNOWN) -> bool:
        return facts.call_flags <= self.allowed

    def explain(self, facts: RequestFacts, context: EvaluationContext) -> str | None:
        if not facts.call_flags:
            return None
        return f"is allowed despite {', '.join(sorted(facts.call_flags))}"
