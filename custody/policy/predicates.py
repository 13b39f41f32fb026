"""The building blocks of compiled rules: small predicates over request facts.

Each predicate answers one question fast (sets, compiled regexes, prepared integers; all work
that can be done once is done when the policy loads) and can say in words why it held, for the
decision's reason. Predicates that need the evaluation context (prices, time) live in
`conditions.py`, allowlists in `allowlists.py`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from custody.chains.values import Amount
from custody.policy.context import UNKNOWN, EvaluationContext
from custody.policy.facts import RequestFacts


class Predicate(Protocol):
    """A condition of a rule; it may raise `Undecidable` when it cannot judge (fail closed)."""

    def __call__(self, facts: RequestFacts, context: EvaluationContext = UNKNOWN) -> bool: ...

    def explain(self, facts: RequestFacts, context: EvaluationContext) -> str | None:
        """Why it held, as a clause after the request summary; None if the summary says it."""
        ...


@dataclass(frozen=True, slots=True)
class FactIn:
    """An exact fact (type, chain, asset) is one of a set of values."""

    read: Callable[[RequestFacts], str | None]
    """None (the fact is not known for this request) is in no set."""
    values: frozenset[str]
    clause: str | None

    def __call__(self, facts: RequestFacts, context: EvaluationContext = UNKNOWN) -> bool:
        return self.read(facts) in self.values

    def explain(self, facts: RequestFacts, context: EvaluationContext) -> str | None:
        return None if self.clause is None else self.clause.format(self.read(facts))


@dataclass(frozen=True, slots=True)
class FactMatchesGlob:
    """A name matches one of several names or shell-style globs, case-sensitively."""

    read: Callable[[RequestFacts], str]
    exact: frozenset[str]
    pattern: re.Pattern[str] | None

    @classmethod
    def build(cls, read: Callable[[RequestFacts], str], globs: Iterable[str]) -> FactMatchesGlob:
        exact = frozenset(glob for glob in globs if not _is_glob(glob))
        wild = [fnmatch.translate(glob) for glob in globs if _is_glob(glob)]
        # One alternation of all globs: a single regex call per rule instead of one per glob.
        pattern = re.compile("|".join(f"(?:{part})" for part in wild)) if wild else None
        return cls(read, exact, pattern)

    def __call__(self, facts: RequestFacts, context: EvaluationContext = UNKNOWN) -> bool:
        name = self.read(facts)
        return name in self.exact or (
            self.pattern is not None and self.pattern.match(name) is not None
        )

    def explain(self, facts: RequestFacts, context: EvaluationContext) -> str | None:
        return None


def _is_glob(name: str) -> bool:
    return any(char in name for char in "*?[")


@dataclass(frozen=True, slots=True)
class FeeBound:
    """The fee a request pays, where what is signed fixes it (a Bitcoin PSBT); a request without
    one satisfies no fee bound, so an allow rule with `fee_lte` never lets it through."""

    compare: Callable[[Amount, Amount], bool]
    bound: Amount
    words: str

    def __call__(self, facts: RequestFacts, context: EvaluationContext = UNKNOWN) -> bool:
        return facts.fee is not None and self.compare(facts.fee, self.bound)

    def explain(self, facts: RequestFacts, context: EvaluationContext) -> str | None:
        if facts.fee is None:
            return "has no fee fixed by what is signed"
        return f"pays a fee of {facts.fee}, {self.words} {self.bound}"


@dataclass(frozen=True, slots=True)
class FeeRateBound:
    """The fee rate (sat/vB) of a transaction whose fee is fixed by what is signed; like
    `FeeBound`, a request without one satisfies no bound."""

    compare: Callable[[Amount, Amount], bool]
    bound: Amount
    words: str

    def __call__(self, facts: RequestFacts, context: EvaluationContext = UNKNOWN) -> bool:
        return facts.fee_rate is not None and self.compare(facts.fee_rate, self.bound)

    def explain(self, facts: RequestFacts, context: EvaluationContext) -> str | None:
        if facts.fee_rate is None:
            return "has no fee rate fixed by what is signed"
        return f"pays {facts.fee_rate} sat/vB, {self.words} {self.bound}"


@dataclass(frozen=True, slots=True)
class AmountBound:
    compare: Callable[[Amount, Amount], bool]
    bound: Amount
    words: str
    # A rule with this bound names exactly one asset (custody.policy.units refuses others at
    # load; stored versions get UnnamedAssetBound instead), so base units compare like for like.

    def __call__(self, facts: RequestFacts, context: EvaluationContext = UNKNOWN) -> bool:
        return self.compare(facts.amount, self.bound)

    def explain(self, facts: RequestFacts, context: EvaluationContext) -> str | None:
        return f"is {self.words} {self.bound}"
