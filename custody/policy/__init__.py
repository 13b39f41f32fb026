"""The policy engine: load, validate and evaluate policy files.

policy = load_policy_file("policies/example.yaml")
decision = evaluate(policy, facts)   # Allow | Deny | RequireApprovals, each with a reason
"""

from custody.policy.decision import Allow, Decision, Deny, RequireApprovals
from custody.policy.errors import PolicyInvalid, Problem
from custody.policy.evaluator import evaluate
from custody.policy.facts import RequestFacts
from custody.policy.loader import LoadedPolicy, load_policy_file, load_policy_text, policy_digest
from custody.policy.schema import (
    Action,
    ActionKind,
    AllowlistEntry,
    ApprovalRequirement,
    Limit,
    Match,
    Policy,
    Rule,
)
from custody.policy.values import RequestType

__all__ = [
    "Action",
    "ActionKind",
    "Allow",
    "AllowlistEntry",
    "ApprovalRequirement",
    "Decision",
    "Deny",
    "Limit",
    "LoadedPolicy",
    "Match",
    "Policy",
    "PolicyInvalid",
    "Problem",
    "RequestFacts",
    "RequestType",
    "RequireApprovals",
    "Rule",
    "evaluate",
    "load_policy_file",
    "load_policy_text",
    "policy_digest",
]
