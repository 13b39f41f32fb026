"""The policy engine: load, validate and evaluate policy files.

policy = load_policy_file("policies/example.yaml")
decision = evaluate(policy, facts, context)   # Allow | Deny | RequireApprovals, with reasons
checks = [check_limit(limit_by_id(policy, i), usage_of(i), facts.amount) for i in decision.limits]
final = apply_limit_checks(decision, checks)  # the store counts usage; this stays pure
"""

from custody.policy.allowlists import entry_active
from custody.policy.calls import CallFlag, selector_of
from custody.policy.context import EvaluationContext, Undecidable
from custody.policy.decision import Allow, Decision, Deny, GroupQuorum, RequireApprovals
from custody.policy.errors import PolicyInvalid, Problem
from custody.policy.evaluator import evaluate, limit_by_id, limits_for
from custody.policy.facts import RequestFacts
from custody.policy.limits import LimitCheck, LimitUsage, check_limit
from custody.policy.loader import LoadedPolicy, load_policy_file, load_policy_text, policy_digest
from custody.policy.prices import PriceKey, ReferencePrices, UsdPrice
from custody.policy.schema import (
    Action,
    ActionKind,
    AllowlistEntry,
    ApprovalRequirement,
    Limit,
    LimitScope,
    Match,
    Policy,
    Quorum,
    Rule,
)
from custody.policy.settle import apply_limit_checks
from custody.policy.values import RequestType

__all__ = [
    "Action",
    "ActionKind",
    "Allow",
    "AllowlistEntry",
    "ApprovalRequirement",
    "CallFlag",
    "Decision",
    "Deny",
    "EvaluationContext",
    "GroupQuorum",
    "Limit",
    "LimitCheck",
    "LimitScope",
    "LimitUsage",
    "LoadedPolicy",
    "Match",
    "Policy",
    "PolicyInvalid",
    "PriceKey",
    "Problem",
    "Quorum",
    "ReferencePrices",
    "RequestFacts",
    "RequestType",
    "RequireApprovals",
    "Rule",
    "Undecidable",
    "UsdPrice",
    "apply_limit_checks",
    "check_limit",
    "entry_active",
    "evaluate",
    "limit_by_id",
    "limits_for",
    "load_policy_file",
    "load_policy_text",
    "policy_digest",
    "selector_of",
]
