"""A policy turned into predicates once, at load time, so evaluation only compares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from custody.policy.facts import RequestFacts
from custody.policy.match_keys import MATCH_KEYS, CompileContext
from custody.policy.predicates import Predicate
from custody.policy.schema import Action, AllowlistEntry, Match, Policy


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    predicates: tuple[Predicate, ...]
    action: Action

    def matches(self, facts: RequestFacts) -> bool:
        return all(predicate(facts) for predicate in self.predicates)

    def clauses(self, facts: RequestFacts) -> list[str]:
        return [clause for p in self.predicates if (clause := p.explain(facts)) is not None]


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    rules: tuple[CompiledRule, ...]


def compile_policy(policy: Policy) -> CompiledPolicy:
    context = CompileContext(allowlists=_allowlist_sets(policy.allowlists))
    return CompiledPolicy(
        tuple(
            CompiledRule(rule.id, compile_match(rule.match, context), rule.action)
            for rule in policy.rules
        )
    )


def compile_match(match: Match, context: CompileContext) -> tuple[Predicate, ...]:
    # Declaration order of Match puts the cheap, selective `type` check first.
    predicates: list[Predicate] = []
    for key in type(match).model_fields:
        value = getattr(match, key)
        if value is None:
            continue
        compiler = MATCH_KEYS.get(key)
        if compiler is None:
            raise LookupError(f"match key {key!r} is parsed but has no compiler")
        predicates.append(compiler(value, context))
    return tuple(predicates)


def _allowlist_sets(
    allowlists: Mapping[str, tuple[AllowlistEntry, ...]],
) -> dict[str, frozenset[tuple[str, str]]]:
    return {
        name: frozenset((entry.chain, entry.address.lower()) for entry in entries)
        for name, entries in allowlists.items()
    }
