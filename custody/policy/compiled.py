"""A policy turned into predicates once, at load time, so evaluation only compares."""

from __future__ import annotations

from dataclasses import dataclass, replace

from custody.policy.actions import ActionKind
from custody.policy.allowlists import split_entries
from custody.policy.calls import ALLOW_KEYS
from custody.policy.conditions import FlagsPermitted, InTimeWindow, UsdBound
from custody.policy.context import UNKNOWN, EvaluationContext
from custody.policy.facts import RequestFacts
from custody.policy.limits import CompiledLimit, compile_limit
from custody.policy.match_keys import MATCH_KEYS, CompileContext
from custody.policy.predicates import Predicate
from custody.policy.receivers import PaysWallet
from custody.policy.schema import Action, Match, Policy, Rule
from custody.policy.units import AMOUNT_KEYS, UnnamedAssetBound, names_one_asset

_NEEDS_CONTEXT = (UsdBound, InTimeWindow)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    predicates: tuple[Predicate, ...]
    action: Action

    def matches(self, facts: RequestFacts, context: EvaluationContext = UNKNOWN) -> bool:
        # May raise Undecidable: the evaluator turns that into a Deny by this rule.
        return all(predicate(facts, context) for predicate in self.predicates)

    def clauses(self, facts: RequestFacts, context: EvaluationContext = UNKNOWN) -> list[str]:
        return [c for p in self.predicates if (c := p.explain(facts, context)) is not None]


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    rules: tuple[CompiledRule, ...]
    limits: tuple[CompiledLimit, ...] = ()


def compile_policy(policy: Policy) -> CompiledPolicy:
    immediate: dict[str, frozenset[tuple[str, str]]] = {}
    delayed: dict[str, dict[tuple[str, str], int]] = {}
    for name, entries in policy.allowlists.items():
        immediate[name], delayed[name] = split_entries(entries)
    context = CompileContext(allowlists=immediate, delayed=delayed)
    return CompiledPolicy(
        tuple(_compile_rule(rule, context) for rule in policy.rules),
        tuple(compile_limit(limit) for limit in policy.limits),
    )


def _compile_rule(rule: Rule, context: CompileContext) -> CompiledRule:
    deny = rule.action.kind is ActionKind.DENY
    predicates = compile_match(rule.match, replace(context, deny=deny))
    if rule.action.kind is not ActionKind.DENY:
        allowed = frozenset(flag for key, flag in ALLOW_KEYS.items() if getattr(rule.match, key))
        gates: list[Predicate] = [FlagsPermitted(allowed)]
        if rule.match.receiver_in is None:
            # With receiver_in the rule names who may be paid; without, only the wallet itself.
            gates.append(PaysWallet())
        # Before prices and the clock: a rule that may not permit this call need not consult them.
        cut = next((i for i, p in enumerate(predicates) if isinstance(p, _NEEDS_CONTEXT)), None)
        cut = len(predicates) if cut is None else cut
        predicates = (*predicates[:cut], *gates, *predicates[cut:])
    return CompiledRule(rule.id, predicates, rule.action)


def compile_match(match: Match, context: CompileContext) -> tuple[Predicate, ...]:
    predicates: list[Predicate] = []
    for key in type(match).model_fields:
        value = getattr(match, key)
        if value is None:
            continue
        compiler = MATCH_KEYS.get(key)
        if compiler is None:
            raise LookupError(f"match key {key!r} is parsed but has no compiler")
        # Only a stored version gets here with such a bound: new files are refused at load.
        unnamed = key in AMOUNT_KEYS and not names_one_asset(match)
        predicate = UnnamedAssetBound(key) if unnamed else compiler(value, context)
        if predicate is not None:
            predicates.append(predicate)
    return tuple(predicates)
