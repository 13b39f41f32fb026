"""The registry of match keys: each YAML key of `match` and the predicate it compiles to.

Adding a match key means a field on `schema.Match` and an entry here; compiling refuses a key
that has a field but no entry, so a new key can never be parsed and then silently ignored.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from custody.policy.facts import RequestFacts
from custody.policy.predicates import (
    AmountBound,
    DestinationOnAllowlists,
    FactIn,
    FactMatchesGlob,
    Predicate,
)


@dataclass(frozen=True, slots=True)
class CompileContext:
    """What a key compiler may need beyond its own value, prepared once per policy."""

    allowlists: Mapping[str, frozenset[tuple[str, str]]]


KeyCompiler = Callable[[Any, CompileContext], Predicate]


def _type(facts: RequestFacts) -> str:
    return facts.type


def _wallet(facts: RequestFacts) -> str:
    return facts.wallet


def _chain(facts: RequestFacts) -> str:
    return facts.chain


def _asset(facts: RequestFacts) -> str:
    return facts.asset


def _amount(compare: Callable[[int, int], bool], words: str) -> KeyCompiler:
    def compile_bound(bound: int, context: CompileContext) -> Predicate:
        return AmountBound(compare, bound, words)

    return compile_bound


def _destination(negate: bool) -> KeyCompiler:
    def compile_lists(names: tuple[str, ...], context: CompileContext) -> Predicate:
        entries = frozenset().union(*(context.allowlists[name] for name in names))
        return DestinationOnAllowlists(names, entries, negate)

    return compile_lists


MATCH_KEYS: Mapping[str, KeyCompiler] = {
    "type": lambda value, context: FactIn(_type, frozenset({str(value)}), None),
    "wallets": lambda globs, context: FactMatchesGlob.build(_wallet, globs),
    "chains": lambda names, context: FactIn(_chain, frozenset(names), "is on chain {}"),
    "assets": lambda names, context: FactIn(_asset, frozenset(names), None),
    "amount_lte": _amount(operator.le, "at most"),
    "amount_lt": _amount(operator.lt, "below"),
    "amount_gte": _amount(operator.ge, "at least"),
    "amount_gt": _amount(operator.gt, "above"),
    "destination_in": _destination(negate=False),
    "destination_not_in": _destination(negate=True),
}
