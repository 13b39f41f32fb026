"""The registry of match keys: each YAML key of `match` and the predicate it compiles to.

Adding a match key means a field on `schema.Match` and an entry here; compiling refuses a key
that has a field but no entry, so a new key can never be parsed and then silently ignored. The
`allow_*` keys compile to None: they do not narrow a rule, they widen the flag gate that
`compiled.py` puts on every permitting rule.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from custody.chains.values import Amount
from custody.policy.allowlists import DestinationOnAllowlists, Key, Listing
from custody.policy.calls import ALLOW_KEYS
from custody.policy.conditions import InTimeWindow, UsdBound
from custody.policy.facts import RequestFacts
from custody.policy.predicates import (
    AmountBound,
    FactIn,
    FactMatchesGlob,
    FeeBound,
    FeeRateBound,
    Predicate,
)
from custody.policy.receivers import ReceiverIn
from custody.policy.timewindow import TimeWindow


@dataclass(frozen=True, slots=True)
class CompileContext:
    """What a key compiler may need beyond its own value, prepared once per policy."""

    allowlists: Mapping[str, frozenset[Key]]
    """Entries usable at once, per allowlist."""
    delayed: Mapping[str, Mapping[Key, int]] = field(default_factory=dict)
    """Entries with an activation delay (seconds), per allowlist."""
    deny: bool = False
    """Whether the rule being compiled denies: its destination conditions then hold when ANY
    destination of a batch satisfies them, in other rules only when EVERY one does."""


KeyCompiler = Callable[[Any, CompileContext], Predicate | None]


def _type(facts: RequestFacts) -> str:
    return facts.type


def _wallet(facts: RequestFacts) -> str:
    return facts.wallet


def _chain(facts: RequestFacts) -> str:
    return facts.chain


def _asset(facts: RequestFacts) -> str:
    return facts.asset


def _receives_asset(facts: RequestFacts) -> str | None:
    return facts.receives_asset


def _client(facts: RequestFacts) -> str | None:
    return facts.client


def _venue(facts: RequestFacts) -> str | None:
    return facts.venue


def _primary_type(facts: RequestFacts) -> str | None:
    return facts.primary_type


def _contract(facts: RequestFacts) -> str | None:
    return None if facts.contract is None else facts.contract.lower()


def _selector(facts: RequestFacts) -> str | None:
    return facts.method_selector


def _amount(compare: Callable[[Amount, Amount], bool], words: str) -> KeyCompiler:
    def compile_bound(bound: Amount, context: CompileContext) -> Predicate:
        return AmountBound(compare, bound, words)

    return compile_bound


def _fee(compare: Callable[[Amount, Amount], bool], words: str) -> KeyCompiler:
    def compile_bound(bound: Amount, context: CompileContext) -> Predicate:
        return FeeBound(compare, bound, words)

    return compile_bound


def _fee_rate(compare: Callable[[Amount, Amount], bool], words: str) -> KeyCompiler:
    def compile_bound(bound: Amount, context: CompileContext) -> Predicate:
        return FeeRateBound(compare, bound, words)

    return compile_bound


def _usd(compare: Callable[[Fraction, Fraction], bool], words: str) -> KeyCompiler:
    def compile_bound(bound: Fraction, context: CompileContext) -> Predicate:
        return UsdBound(compare, bound, words)

    return compile_bound


def listing(names: tuple[str, ...], context: CompileContext) -> Listing:
    entries = frozenset().union(*(context.allowlists[name] for name in names))
    delayed = tuple((name, context.delayed[name]) for name in names if context.delayed.get(name))
    return Listing(names, entries, delayed)


def _destination(negate: bool) -> KeyCompiler:
    def compile_lists(names: tuple[str, ...], context: CompileContext) -> Predicate:
        return DestinationOnAllowlists(listing(names, context), negate, every=not context.deny)

    return compile_lists


def _receiver_in(names: tuple[str, ...], context: CompileContext) -> Predicate:
    return ReceiverIn(listing(names, context))


def _time_window(window: TimeWindow, context: CompileContext) -> Predicate:
    return InTimeWindow(window, ZoneInfo(window.tz))


def _in(read: Callable[[RequestFacts], str | None], clause: str | None) -> KeyCompiler:
    return lambda names, context: FactIn(read, frozenset(names), clause)


MATCH_KEYS: Mapping[str, KeyCompiler] = {
    "type": lambda value, context: FactIn(_type, frozenset({str(value)}), None),
    "wallets": lambda globs, context: FactMatchesGlob.build(_wallet, globs),
    "chains": _in(_chain, "is on chain {}"),
    "assets": _in(_asset, None),
    "receives_assets": _in(_receives_asset, "buys {}"),
    "clients": _in(_client, "was asked for by client {}"),
    "venues": _in(_venue, "trades on venue {}"),
    "primary_types": _in(_primary_type, "signs a {}"),
    "contracts": lambda addresses, context: FactIn(
        _contract, frozenset(a.lowercase for a in addresses), "calls contract {}"
    ),
    "methods": _in(_selector, "calls method {}"),
    "amount_lte": _amount(operator.le, "at most"),
    "amount_lt": _amount(operator.lt, "below"),
    "amount_gte": _amount(operator.ge, "at least"),
    "amount_gt": _amount(operator.gt, "above"),
    "fee_lte": _fee(operator.le, "at most"),
    "fee_gt": _fee(operator.gt, "above"),
    "fee_rate_lte": _fee_rate(operator.le, "at most"),
    "fee_rate_gt": _fee_rate(operator.gt, "above"),
    "destination_in": _destination(negate=False),
    "destination_not_in": _destination(negate=True),
    "receiver_in": _receiver_in,
    **{key: (lambda value, context: None) for key in ALLOW_KEYS},
    "amount_usd_lte": _usd(operator.le, "at most"),
    "amount_usd_lt": _usd(operator.lt, "below"),
    "amount_usd_gte": _usd(operator.ge, "at least"),
    "amount_usd_gt": _usd(operator.gt, "above"),
    "time_window": _time_window,
}
