"""Evaluation: rules top to bottom, the first that matches decides, no match denies.

Fail closed: whatever goes wrong while evaluating (a bug, a malformed facts object) ends in a
Deny that says so, never in an Allow and never in an exception a caller might mishandle. A rule
that cannot be judged (a USD amount without a fresh price, a time window without a time) denies
in its own name rather than being skipped, so a later, more permissive rule never decides instead.
"""

from __future__ import annotations

import logging

from custody.policy.actions import ActionKind
from custody.policy.compiled import CompiledRule
from custody.policy.context import UNKNOWN, EvaluationContext, Undecidable
from custody.policy.decision import Allow, Decision, Deny, GroupQuorum, RequireApprovals
from custody.policy.facts import RequestFacts
from custody.policy.limits_schema import Limit
from custody.policy.loader import LoadedPolicy
from custody.policy.receivers import foreign_receiver

logger = logging.getLogger(__name__)

DEFAULT_DENY_REASON = "no rule matched: denied by default"


def evaluate(
    policy: LoadedPolicy, facts: RequestFacts, context: EvaluationContext | None = None
) -> Decision:
    """Decide on `facts`. Without `context`, nothing is known of time, prices or listing times."""
    known = UNKNOWN if context is None else context
    try:
        for rule in policy.compiled.rules:
            try:
                if rule.matches(facts, known):
                    return _decide(rule, facts, known, limits_for(policy, facts))
            except Undecidable as undecidable:
                return Deny(rule.id, f"rule {rule.id}: {undecidable.reason}: denied (fail closed)")
        return Deny(None, _default_deny_reason(facts))
    except Exception as error:
        # getattr: the policy object itself may be what is broken, and logging must not raise.
        logger.exception("policy %s evaluation failed; denying", getattr(policy, "digest", "?"))
        return Deny(None, f"policy evaluation failed ({type(error).__name__}): denied")


def _default_deny_reason(facts: RequestFacts) -> str:
    """Name what a flagged call or a trade paying someone else needs: permitting rules skip it
    unless they say so."""
    receiver = foreign_receiver(facts)
    if receiver is not None:
        return f"{DEFAULT_DENY_REASON} ({receiver})"
    if not facts.call_flags:
        return DEFAULT_DENY_REASON
    needs = ", ".join(f"allow_{flag}: true" for flag in sorted(facts.call_flags))
    flags = ", ".join(sorted(facts.call_flags))
    return f"{DEFAULT_DENY_REASON} (the call is flagged {flags}; a rule must say {needs})"


def limits_for(policy: LoadedPolicy, facts: RequestFacts) -> tuple[str, ...]:
    """Ids of the limits whose scope covers `facts`, in file order."""
    return tuple(limit.id for limit in policy.compiled.limits if limit.applies(facts))


def limit_by_id(policy: LoadedPolicy, limit_id: str) -> Limit:
    return next(c.limit for c in policy.compiled.limits if c.id == limit_id)


def _decide(
    rule: CompiledRule, facts: RequestFacts, context: EvaluationContext, limits: tuple[str, ...]
) -> Decision:
    reason = _reason(rule, facts, context)
    action = rule.action
    if action.kind is ActionKind.ALLOW:
        return Allow(rule.id, reason, limits)
    if action.kind is ActionKind.DENY:
        return Deny(rule.id, reason)
    requirement = action.require_approvals
    if action.kind is ActionKind.REQUIRE_APPROVALS and requirement is not None:
        quorums = tuple(GroupQuorum(q.count, q.group) for q in requirement.quorums)
        return RequireApprovals.of(rule.id, reason, quorums, requirement.expires_after, limits)
    raise ValueError(f"rule {rule.id} has an action the evaluator does not know: {action.kind}")


def _reason(rule: CompiledRule, facts: RequestFacts, context: EvaluationContext) -> str:
    clauses = rule.clauses(facts, context)
    return f"rule {rule.id}: {facts.summary()} {' and '.join(clauses) if clauses else 'matched'}"
