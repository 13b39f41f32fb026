"""Combining a rule's decision with the limit checks the store made for it.

Order of strength: deny > require approvals > allow. An exceeded limit can only make a decision
stricter: `on_exceed: deny` denies (naming the limit as `limit:<id>`, which no rule id can
spell), `on_exceed: {require_approvals}` turns an Allow into RequireApprovals or adds its quorums
to those the rule already asked for (the larger count per group, the shorter expiry).
"""

from __future__ import annotations

from collections.abc import Sequence

from custody.policy.actions import ActionKind
from custody.policy.decision import Allow, Decision, Deny, GroupQuorum, RequireApprovals
from custody.policy.limits import LimitCheck


def apply_limit_checks(decision: Decision, checks: Sequence[LimitCheck]) -> Decision:
    if isinstance(decision, Deny):
        return decision
    checked = {check.limit_id for check in checks}
    missing = [limit for limit in decision.limits if limit not in checked]
    if missing:
        # A limit that applies but was not counted could be exceeded unseen.
        return Deny(decision.rule_id, f"limit {missing[0]} was not checked: denied")
    exceeded = [check for check in checks if not check.fits]
    for check in exceeded:
        if check.on_exceed.kind is not ActionKind.REQUIRE_APPROVALS:
            return Deny(f"limit:{check.limit_id}", f"{check.reason}: denied")
    for check in exceeded:
        decision = _escalate(decision, check)
    return decision


def _escalate(decision: Allow | RequireApprovals, check: LimitCheck) -> RequireApprovals:
    requirement = check.on_exceed.require_approvals
    assert requirement is not None  # ActionKind.REQUIRE_APPROVALS always carries one
    extra = tuple(GroupQuorum(q.count, q.group) for q in requirement.quorums)
    reason = f"{decision.reason}; {check.reason}: approvals required"
    if isinstance(decision, Allow):
        return RequireApprovals.of(
            decision.rule_id, reason, extra, requirement.expires_after, decision.limits
        )
    counts = {quorum.group: quorum.count for quorum in decision.quorums}
    for quorum in extra:
        counts[quorum.group] = max(quorum.count, counts.get(quorum.group, 0))
    expiries = [e for e in (decision.expires_after_seconds, requirement.expires_after) if e]
    return RequireApprovals.of(
        decision.rule_id,
        reason,
        tuple(GroupQuorum(count, group) for group, count in counts.items()),
        min(expiries) if expiries else None,
        decision.limits,
    )
