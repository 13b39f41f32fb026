"""What a rule (or an exceeded limit) does: allow, deny, or require approvals first.

`require_approvals` has two spellings: one quorum (`{count, group}`) or several that must all be
met (`{all_of: [{count, group}, ...]}`). Both become a tuple of quorums, which is what the
approvals code counts; `count` and `group` are kept for the one-quorum form people write most.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    Field,
    SerializerFunctionWrapHandler,
    StrictInt,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from custody.policy.model import PolicyModel, non_empty
from custody.policy.values import DurationSeconds, Name

ApprovalCount = Annotated[StrictInt, Field(ge=1, le=100)]


class Quorum(PolicyModel):
    count: ApprovalCount
    group: Name


def _distinct_groups(quorums: tuple[Quorum, ...]) -> tuple[Quorum, ...]:
    groups = [quorum.group for quorum in quorums]
    repeated = sorted({group for group in groups if groups.count(group) > 1})
    if repeated:
        # Two quorums of one group are ambiguous (do they add up or overlap?): write one count.
        raise PydanticCustomError(
            "duplicate_group", "group {group} is listed twice", {"group": repeated[0]}
        )
    return quorums


Quorums = Annotated[tuple[Quorum, ...], AfterValidator(non_empty), AfterValidator(_distinct_groups)]


class ApprovalRequirement(PolicyModel):
    count: ApprovalCount | None = None
    group: Name | None = None
    all_of: Quorums | None = None
    expires_after: DurationSeconds | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_form(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        if "all_of" in data:
            wrong = [key for key in ("count", "group") if key in data]
            kind, message = "not_with_all_of", "not allowed together with all_of"
        else:
            wrong = [key for key in ("count", "group") if key not in data]
            kind, message = "missing", "Field required"
        if wrong:
            # Raised as a ValidationError so each problem points at its own key, like pydantic's.
            details = [
                InitErrorDetails(
                    type=PydanticCustomError(kind, message) if kind != "missing" else "missing",
                    loc=(key,),
                    input=data,
                )
                for key in wrong
            ]
            raise ValidationError.from_exception_data(cls.__name__, details)
        return data

    @property
    def quorums(self) -> tuple[Quorum, ...]:
        if self.all_of is not None:
            return self.all_of
        # The before-validator ensures both are given when all_of is not.
        assert self.count is not None
        assert self.group is not None
        return (Quorum(count=self.count, group=self.group),)


class ActionKind(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    REQUIRE_APPROVALS = "require_approvals"


class Action(PolicyModel):
    """`allow`, `deny` or `{require_approvals: {...}}` in the file; a tagged value in the model."""

    kind: ActionKind
    require_approvals: ApprovalRequirement | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_file(cls, data: object) -> object:
        if data in (ActionKind.ALLOW.value, ActionKind.DENY.value):
            return {"kind": data}
        if isinstance(data, dict) and "require_approvals" in data and "kind" not in data:
            return {"kind": ActionKind.REQUIRE_APPROVALS.value, **data}
        raise PydanticCustomError(
            "not_action", "not an action: allow, deny or {require_approvals: {count, group}}"
        )

    @model_serializer(mode="wrap")
    def _to_file(self, handler: SerializerFunctionWrapHandler) -> object:
        # Serialise back to the file's spelling so the digest is of what people write.
        data = handler(self)
        if self.kind is ActionKind.REQUIRE_APPROVALS:
            return {"require_approvals": data["require_approvals"]}
        return self.kind.value


class OnExceed(Action):
    """What an exceeded limit does: `deny`, or `{require_approvals: ...}`; never `allow`."""

    @model_validator(mode="after")
    def _not_allow(self) -> OnExceed:
        if self.kind is ActionKind.ALLOW:
            raise PydanticCustomError("allow_on_exceed", "on_exceed cannot be allow")
        return self
