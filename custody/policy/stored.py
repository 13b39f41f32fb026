"""A policy decision as stored with a request (`Request.policy_decision`), read back typed.

`Decision.to_dict()` writes the column; `read_decision` is its one reader, so views, quorum checks
and webhooks use fields instead of digging in a dict. The models mirror `to_dict()` key for key:
`limits` and `all_of`, written only when non-empty, are absent again when dumped, and fields are
declared in sorted order, as the column is written, so the API shows the stored object unchanged.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, model_validator

from custody.jsonshape import JsonModel, absent
from custody.policy.decision import Decision


class PolicyQuorum(JsonModel):
    count: int = Field(ge=1)
    group: str


class PolicyAllow(JsonModel):
    decision: Literal["allow"]
    limits: tuple[str, ...] | None = absent("ids of the limits this request counts towards")
    reason: str
    rule: str

    def quorums(self) -> tuple[PolicyQuorum, ...]:
        return ()


class PolicyDeny(JsonModel):
    decision: Literal["deny"]
    limits: tuple[str, ...] | None = absent()
    reason: str
    rule: str | None = Field(description="null for the default deny (no rule matched)")

    def quorums(self) -> tuple[PolicyQuorum, ...]:
        return ()


class PolicyRequireApprovals(JsonModel):
    all_of: tuple[PolicyQuorum, ...] | None = absent("every quorum, when there are several")
    count: int = Field(description="approvals needed in all (distinct approvers)")
    decision: Literal["require_approvals"]
    expires_after_seconds: int | None
    group: str | None = Field(description="the one group, or null when `all_of` lists several")
    limits: tuple[str, ...] | None = absent()
    reason: str
    rule: str

    @model_validator(mode="after")
    def _names_its_quorums(self) -> PolicyRequireApprovals:
        if not self.all_of and self.group is None:
            raise ValueError("a require_approvals decision needs a group or all_of")
        return self

    def quorums(self) -> tuple[PolicyQuorum, ...]:
        """Every group quorum that must be met: `all_of`, or the one (group, count)."""
        if self.all_of:
            return self.all_of
        assert self.group is not None  # the validator above
        return (PolicyQuorum(count=self.count, group=self.group),)


StoredDecision = Annotated[
    PolicyAllow | PolicyDeny | PolicyRequireApprovals, Field(discriminator="decision")
]
_DECISION: TypeAdapter[StoredDecision] = TypeAdapter(StoredDecision)


def read_decision(column: str) -> StoredDecision:
    return _DECISION.validate_json(column)


def stored_decision(decision: Decision) -> StoredDecision:
    """A live decision as it will read back from the column."""
    return _DECISION.validate_python(decision.to_dict())
