"""Decisions carry the rule that made them and a reason a person can read.

`to_dict()` is the `policy` object of the API answer and of the `policy.evaluated` ledger entry:
strings and integers only, because the ledger's canonical JSON has no room for floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

JsonScalar = str | int | None


@dataclass(frozen=True, slots=True)
class Allow:
    rule_id: str
    reason: str
    decision: ClassVar[Literal["allow"]] = "allow"

    def to_dict(self) -> dict[str, JsonScalar]:
        return {"decision": self.decision, "rule": self.rule_id, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Deny:
    rule_id: str | None
    """None when no rule decided: the default deny, or evaluation failed."""
    reason: str
    decision: ClassVar[Literal["deny"]] = "deny"

    def to_dict(self) -> dict[str, JsonScalar]:
        return {"decision": self.decision, "rule": self.rule_id, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class RequireApprovals:
    rule_id: str
    reason: str
    count: int
    group: str
    expires_after_seconds: int | None
    decision: ClassVar[Literal["require_approvals"]] = "require_approvals"

    def to_dict(self) -> dict[str, JsonScalar]:
        return {
            "decision": self.decision,
            "rule": self.rule_id,
            "reason": self.reason,
            "count": self.count,
            "group": self.group,
            "expires_after_seconds": self.expires_after_seconds,
        }


Decision = Allow | Deny | RequireApprovals
