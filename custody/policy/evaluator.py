"""Evaluation: rules top to bottom, the first that matches decides, no match denies.

Fail closed: whatever goes wrong while evaluating (a bug, a malformed facts object) ends in a
Deny that says so, never in an Allow and never in an exception a caller might mishandle.
"""

from __future__ import annotations

import logging

from custody.policy.compiled import CompiledRule
from custody.policy.decision import Allow, Decision, Deny, RequireApprovals
from custody.policy.facts import RequestFacts
from custody.policy.loader import LoadedPolicy
from custody.policy.schema import ActionKind

logger = logging.getLogger(__name__)

DEFAULT_DENY_REASON = "no rule matched: denied by default"


def evaluate(policy: LoadedPolicy, facts: RequestFacts) -> Decision:
    try:
        for rule in policy.compiled.rules:
            if rule.matches(facts):
                return _decide(rule, facts)
        return Deny(None, DEFAULT_DENY_REASON)
    except Exception as error:
        # getattr: the policy object itself may be what is broken, and logging must not raise.
        logger.exception("policy %s evaluation failed; denying", getattr(policy, "digest", "?"))
        return Deny(None, f"policy evaluation failed ({type(error).__name__}): denied")


def _decide(rule: CompiledRule, facts: RequestFacts) -> Decision:
    reason = _reason(rule, facts)
    action = rule.action
    if action.kind is ActionKind.ALLOW:
        return Allow(rule.id, reason)
    if action.kind is ActionKind.DENY:
        return Deny(rule.id, reason)
    requirement = action.require_approvals
    if action.kind is ActionKind.REQUIRE_APPROVALS and requirement is not None:
        return RequireApprovals(
            rule.id,
            reason,
            count=requirement.count,
            group=requirement.group,
            expires_after_seconds=requirement.expires_after,
        )
    raise ValueError(f"rule {rule.id} has an action the evaluator does not know: {action.kind}")


def _reason(rule: CompiledRule, facts: RequestFacts) -> str:
    clauses = rule.clauses(facts)
    return f"rule {rule.id}: {facts.summary()} {' and '.join(clauses) if clauses else 'matched'}"
