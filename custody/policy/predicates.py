"""The building blocks of compiled rules: small predicates over request facts.

Each predicate answers one question fast (sets, compiled regexes, prepared integers; all work
that can be done once is done when the policy loads) and can say in words why it held, for the
decision's reason. Later match keys (USD amounts, time windows, contract calls) add classes here.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from custody.policy.facts import RequestFacts


class Predicate(Protocol):
    def __call__(self, facts: RequestFacts) -> bool: ...

    def explain(self, facts: RequestFacts) -> str | None:
        """Why it held, as a clause after the request summary; None if the summary says it."""
        ...


@dataclass(frozen=True, slots=True)
class FactIn:
    """An exact fact (type, chain, asset) is one of a set of values."""

    read: Callable[[RequestFacts], str]
    values: frozenset[str]
    clause: str | None

    def __call__(self, facts: RequestFacts) -> bool:
        return self.read(facts) in self.values

    def explain(self, facts: RequestFacts) -> str | None:
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

    def __call__(self, facts: RequestFacts) -> bool:
        name = self.read(facts)
        return name in self.exact or (
            self.pattern is not None and self.pattern.match(name) is not None
        )

    def explain(self, facts: RequestFacts) -> str | None:
        return None


def _is_glob(name: str) -> bool:
    return any(char in name for char in "*?[")


@dataclass(frozen=True, slots=True)
class AmountBound:
    compare: Callable[[int, int], bool]
    bound: int
    words: str

    def __call__(self, facts: RequestFacts) -> bool:
        return self.compare(facts.amount, self.bound)

    def explain(self, facts: RequestFacts) -> str | None:
        return f"is {self.words} {self.bound}"


@dataclass(frozen=True, slots=True)
class DestinationOnAllowlists:
    """The destination is (or, negated, is not) on any of the named allowlists for its chain.

    A request without a destination is on no allowlist: it never passes `destination_in`, and it
    does match `destination_not_in`, so a deny rule written that way also catches it.
    """

    names: tuple[str, ...]
    entries: frozenset[tuple[str, str]]
    """(chain, lower-case address): EVM addresses compare case-insensitively."""
    negate: bool

    def __call__(self, facts: RequestFacts) -> bool:
        listed = (
            facts.destination is not None
            and (facts.chain, facts.destination.lower()) in self.entries
        )
        return listed != self.negate

    def explain(self, facts: RequestFacts) -> str | None:
        names = ", ".join(self.names)
        if facts.destination is None:
            return f"has no destination, so is on no allowlist ({names})"
        if len(self.names) == 1:
            where = "is not on" if self.negate else "is on"
            return f"goes to {facts.destination}, which {where} allowlist {names}"
        where = "is on none of" if self.negate else "is on one of"
        return f"goes to {facts.destination}, which {where} allowlists {names}"
