"""Velocity limits, the pure half: which limits a request counts towards, and whether it fits.

The store counts usage (signed and reserved requests within the rolling window) under a lock and
passes it in as `LimitUsage`; nothing here reads a clock or a database, so the same answer comes
out of the intake, the signer's re-check and `custody policy test`.
"""

from __future__ import annotations

from dataclasses import dataclass

from custody.chains.values import Amount
from custody.policy.actions import OnExceed
from custody.policy.context import UNKNOWN
from custody.policy.facts import RequestFacts
from custody.policy.limits_schema import Limit
from custody.policy.predicates import FactIn, FactMatchesGlob, Predicate


@dataclass(frozen=True, slots=True)
class CompiledLimit:
    limit: Limit
    scope: tuple[Predicate, ...]

    @property
    def id(self) -> str:
        return self.limit.id

    def applies(self, facts: RequestFacts) -> bool:
        return all(predicate(facts, UNKNOWN) for predicate in self.scope)


def compile_limit(limit: Limit) -> CompiledLimit:
    scope = limit.scope_or_short
    predicates: list[Predicate] = []
    if scope.wallets is not None:
        predicates.append(FactMatchesGlob.build(lambda f: f.wallet, scope.wallets))
    if scope.assets is not None:
        predicates.append(FactIn(lambda f: f.asset, frozenset(scope.assets), None))
    if scope.chains is not None:
        predicates.append(FactIn(lambda f: f.chain, frozenset(scope.chains), None))
    if scope.clients is not None:
        predicates.append(FactIn(lambda f: f.client, frozenset(scope.clients), None))
    return CompiledLimit(limit, tuple(predicates))


@dataclass(frozen=True, slots=True)
class LimitUsage:
    """What already counts within the window: signed plus in-flight (reserved) requests."""

    amount: int
    """Sum of base units in the limit's asset; ignored by count-only limits."""
    count: int

    def __post_init__(self) -> None:
        for value in (self.amount, self.count):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError("usage is counted in non-negative integers")


@dataclass(frozen=True, slots=True)
class LimitCheck:
    limit_id: str
    fits: bool
    reason: str
    on_exceed: OnExceed


def check_limit(limit: Limit, usage: LimitUsage, amount: Amount) -> LimitCheck:
    """Whether one more request of `amount` base units fits; equal to the maximum still fits."""
    over: list[str] = []
    # Usage is a sum of many amounts and may itself pass 2**256: it stays a plain int.
    if limit.max_amount is not None and usage.amount + amount.value > limit.max_amount.value:
        over.append(
            f"{usage.amount} + {amount} {limit.assets[0] if limit.assets else ''} exceeds"
            f" max_amount {limit.max_amount}"
        )
    if limit.max_count is not None and usage.count + 1 > limit.max_count:
        over.append(f"request {usage.count + 1} exceeds max_count {limit.max_count}")
    window = f"in {limit.model_dump(mode='json')['window']}"
    reason = (
        f"limit {limit.id}: {'; '.join(over)} {window}"
        if over
        else f"limit {limit.id}: fits {window}"
    )
    return LimitCheck(limit.id, not over, reason, limit.on_exceed_action)
