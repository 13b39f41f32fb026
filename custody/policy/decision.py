"""Decisions carry the rule that made them and a reason a person can read.

`to_dict()` is the `policy` object of the API answer and of the `policy.evaluated` ledger entry:
strings and integers only, because the ledger's canonical JSON has no room for floats. Keys that
are new with this version (`limits`, `all_of`) appear only when non-empty, so a decision that uses
neither has the same canonical bytes as before they existed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

JsonValue = str | int | None | list[str] | list[dict[str, object]]


@dataclass(frozen=True, slots=True)
class GroupQuorum:
    count: int
    group: str


def _with_limits(data: dict[str, JsonValue], limits: tuple[str, ...]) -> dict[str, JsonValue]:
    if limits:
        data["limits"] = list(limits)
    return data


@dataclass(frozen=True, slots=True)
class Allow:
    rule_id: str
    reason: str
    limits: tuple[str, ...] = ()
    """Ids of the limits the request counts towards (to be reserved by the store)."""
    decision: ClassVar[Literal["allow"]] = "allow"

    def to_dict(self) -> dict[str, JsonValue]:
        data: dict[str, JsonValue] = {
            "decision": self.decision,
            "rule": self.rule_id,
            "reason": self.reason,
        }
        return _with_limits(data, self.limits)


@dataclass(frozen=True, slots=True)
class Deny:
    rule_id: str | None
    """None when no rule decided: the default deny, or evaluation failed. `limit:<id>` when an
    exceeded limit denied."""
    reason: str
    limits: tuple[str, ...] = ()
    """Always empty from `evaluate`: a denied request reserves nothing."""
    decision: ClassVar[Literal["deny"]] = "deny"

    def to_dict(self) -> dict[str, JsonValue]:
        data: dict[str, JsonValue] = {
            "decision": self.decision,
            "rule": self.rule_id,
            "reason": self.reason,
        }
        return _with_limits(data, self.limits)


@dataclass(frozen=True, slots=True)
class RequireApprovals:
    """Approvals needed before signing: every quorum in `quorums` must be met.

    `count` and `group` describe the one-quorum case; with several quorums (`all_of`), `count` is
    their sum (an approver counts once, so that many distinct people) and `group` is None, so code
    that reads only `count`/`group` can never mistake a multi-group requirement for an easier one.
    """

    rule_id: str
    reason: str
    count: int
    group: str | None
    expires_after_seconds: int | None
    quorums: tuple[GroupQuorum, ...] = ()
    limits: tuple[str, ...] = ()
    decision: ClassVar[Literal["require_approvals"]] = "require_approvals"

    def __post_init__(self) -> None:
        if not self.quorums:
            if self.group is None:
                raise ValueError("RequireApprovals needs a group or quorums")
            object.__setattr__(self, "quorums", (GroupQuorum(self.count, self.group),))
        groups = [quorum.group for quorum in self.quorums]
        if len(set(groups)) != len(groups) or any(q.count < 1 for q in self.quorums):
            raise ValueError("quorums need distinct groups and positive counts")
        single = self.quorums[0].group if len(self.quorums) == 1 else None
        if self.count != sum(q.count for q in self.quorums) or self.group != single:
            raise ValueError("count and group must agree with quorums")

    @classmethod
    def of(
        cls,
        rule_id: str,
        reason: str,
        quorums: tuple[GroupQuorum, ...],
        expires_after_seconds: int | None,
        limits: tuple[str, ...] = (),
    ) -> RequireApprovals:
        group = quorums[0].group if len(quorums) == 1 else None
        total = sum(quorum.count for quorum in quorums)
        return cls(rule_id, reason, total, group, expires_after_seconds, quorums, limits)

    def to_dict(self) -> dict[str, JsonValue]:
        data: dict[str, JsonValue] = {
            "decision": self.decision,
            "rule": self.rule_id,
            "reason": self.reason,
            "count": self.count,
            "group": self.group,
            "expires_after_seconds": self.expires_after_seconds,
        }
        if len(self.quorums) > 1:
            data["all_of"] = [{"count": q.count, "group": q.group} for q in self.quorums]
        return _with_limits(data, self.limits)


Decision = Allow | Deny | RequireApprovals
