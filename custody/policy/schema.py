"""The policy file format, version 1, as frozen pydantic models.

The models are the file format and nothing more: evaluation works on a compiled form built from
them (see `compiled.py`), so the format can stay close to what people write while the evaluator
stays fast. Field names are the YAML keys, which lets the loader map an error location straight back
to a line of the file.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictInt,
    StrictStr,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from custody.policy.references import reference_problems
from custody.policy.values import Address, Amount, DurationSeconds, Glob, Name, RequestType

_T = TypeVar("_T")


def _non_empty(items: tuple[_T, ...]) -> tuple[_T, ...]:
    # An empty list would silently match nothing (or, negated, everything).
    if not items:
        raise PydanticCustomError("empty", "must not be empty")
    return items


def _one_or_many(value: object) -> object:
    return (value,) if isinstance(value, str) else value


Names = Annotated[tuple[Name, ...], AfterValidator(_non_empty)]
Globs = Annotated[tuple[Glob, ...], AfterValidator(_non_empty)]
AllowlistRefs = Annotated[
    tuple[Name, ...], BeforeValidator(_one_or_many), AfterValidator(_non_empty)
]
Label = Annotated[StrictStr, Field(min_length=1, max_length=200)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_null(cls, value: object) -> object:
        # `amount_lte:` with its value forgotten is null in YAML; treating it as "no condition"
        # would quietly widen the rule, so an optional key is either given a value or left out.
        if value is None:
            raise PydanticCustomError("null", "empty value (leave the key out instead)")
        return value


class AllowlistEntry(_Model):
    chain: Name
    address: Address
    label: Label


class Limit(_Model):
    """A velocity limit; validated now, enforced once rolling windows are counted in the store."""

    id: Name
    wallets: Globs
    asset: Name
    window: DurationSeconds
    max_amount: Amount


class Match(_Model):
    """Conditions that must all hold; `{}` matches every request and must be written explicitly.

    Every key here needs a compiler in `match_keys.MATCH_KEYS`; compiling refuses a key without one
    rather than ignoring it.
    """

    type: RequestType | None = None
    wallets: Globs | None = None
    chains: Names | None = None
    assets: Names | None = None
    amount_lte: Amount | None = None
    amount_lt: Amount | None = None
    amount_gte: Amount | None = None
    amount_gt: Amount | None = None
    destination_in: AllowlistRefs | None = None
    destination_not_in: AllowlistRefs | None = None


class ApprovalRequirement(_Model):
    count: Annotated[StrictInt, Field(ge=1, le=100)]
    group: Name
    expires_after: DurationSeconds | None = None


class ActionKind(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    REQUIRE_APPROVALS = "require_approvals"


class Action(_Model):
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


class Rule(_Model):
    id: Name
    description: Annotated[StrictStr, Field(max_length=500)] | None = None
    match: Match
    action: Action


def _at_least_one_rule(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    if not rules:
        raise PydanticCustomError(
            "no_rules", "a policy needs at least one rule (write a deny-all rule explicitly)"
        )
    return rules


class Policy(_Model):
    version: Literal[1]
    allowlists: dict[Name, tuple[AllowlistEntry, ...]] = Field(default_factory=dict)
    limits: tuple[Limit, ...] = ()
    rules: Annotated[tuple[Rule, ...], AfterValidator(_at_least_one_rule)]

    @field_validator("version", mode="before")
    @classmethod
    def _exact_version(cls, value: object) -> object:
        # True == 1 and 1.0 == 1 in Python; neither is a version someone meant to write.
        if type(value) is not int or value != 1:
            raise PydanticCustomError("unsupported_version", "unsupported version (expected 1)")
        return value

    @model_validator(mode="after")
    def _references_resolve(self) -> Policy:
        problems = reference_problems(self)
        if problems:
            # One error carrying all problems with their own locations; the loader unpacks it.
            summary = "; ".join(
                f"{'.'.join(map(str, loc))}: {message}" for loc, message in problems
            )
            raise PydanticCustomError(
                "policy_references", "{summary}", {"summary": summary, "problems": problems}
            )
        return self
