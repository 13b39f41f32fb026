"""The policy file format, version 1, as frozen pydantic models.

The models are the file format and nothing more: evaluation works on a compiled form built from
them (see `compiled.py`), so the format can stay close to what people write while the evaluator
stays fast. Field names are the YAML keys, which lets the loader map an error location straight back
to a line of the file. Every optional key defaults to None and is left out of the digest, so adding
a key to the language does not change the digest of files that do not use it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from custody.chains.bitcoin.addresses import ListedAddress
from custody.chains.values import Amount
from custody.policy.actions import Action, ActionKind, ApprovalRequirement, OnExceed, Quorum
from custody.policy.breakers import Breaker, Breakers
from custody.policy.calls import AllowFlag, Contracts, Methods
from custody.policy.limits_schema import Limit, LimitScope
from custody.policy.model import Globs, Names, PolicyModel, non_empty
from custody.policy.prices import UsdAmount
from custody.policy.references import reference_problems
from custody.policy.timewindow import TimeWindow
from custody.policy.units import amount_unit_problems
from custody.policy.values import DurationSeconds, Name, RequestType

STORED = "stored"
"""Validation context key: the text is a version applied earlier (see `load_stored_policy_text`)."""

__all__ = [
    "Action",
    "ActionKind",
    "AllowlistEntry",
    "ApprovalRequirement",
    "Breaker",
    "Governance",
    "Limit",
    "LimitScope",
    "Match",
    "OnExceed",
    "Policy",
    "Quorum",
    "Rule",
]


def _one_or_many(value: object) -> object:
    return (value,) if isinstance(value, str) else value


AllowlistRefs = Annotated[
    tuple[Name, ...], BeforeValidator(_one_or_many), AfterValidator(non_empty)
]
Label = Annotated[StrictStr, Field(min_length=1, max_length=200)]


class AllowlistEntry(PolicyModel):
    chain: Name
    address: ListedAddress
    """EVM (EIP-55 where mixed case) or a Bitcoin segwit address, by the chain's kind."""
    label: Label
    activation_delay: DurationSeconds | None = None
    """Usable only this long after the policy version listing it was applied."""


class Match(PolicyModel):
    """Conditions that must all hold; `{}` matches every request and must be written explicitly.

    Every key here needs a compiler in `match_keys.MATCH_KEYS`; compiling refuses a key without one
    rather than ignoring it. Declaration order is evaluation order: cheap, selective keys first,
    keys that may fail closed (USD prices, time) last, so they are consulted only when needed.
    """

    type: RequestType | None = None
    wallets: Globs | None = None
    chains: Names | None = None
    assets: Names | None = None
    receives_assets: Names | None = None
    clients: Names | None = None
    venues: Names | None = None
    primary_types: Names | None = None
    contracts: Contracts | None = None
    methods: Methods | None = None
    amount_lte: Amount | None = None
    amount_lt: Amount | None = None
    amount_gte: Amount | None = None
    amount_gt: Amount | None = None
    fee_lte: Amount | None = None
    fee_gt: Amount | None = None
    fee_rate_lte: Amount | None = None
    fee_rate_gt: Amount | None = None
    destination_in: AllowlistRefs | None = None
    destination_not_in: AllowlistRefs | None = None
    receiver_in: AllowlistRefs | None = None
    allow_delegatecall: AllowFlag | None = None
    allow_unknown_method: AllowFlag | None = None
    allow_unlimited_approval: AllowFlag | None = None
    allow_self_call: AllowFlag | None = None
    amount_usd_lte: UsdAmount | None = None
    amount_usd_lt: UsdAmount | None = None
    amount_usd_gte: UsdAmount | None = None
    amount_usd_gt: UsdAmount | None = None
    time_window: TimeWindow | None = None


class Rule(PolicyModel):
    id: Name
    description: Annotated[StrictStr, Field(max_length=500)] | None = None
    match: Match
    action: Action

    @model_validator(mode="after")
    def _allow_flags_need_a_permitting_action(self) -> Rule:
        flags = [key for key in type(self.match).model_fields if key.startswith("allow_")]
        if self.action.kind is ActionKind.DENY and any(getattr(self.match, k) for k in flags):
            # On a deny rule an allow_* key would read as a permission and permit nothing.
            raise PydanticCustomError("allow_on_deny", "allow_* keys make no sense on a deny rule")
        return self


def _at_least_one_rule(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    if not rules:
        raise PydanticCustomError(
            "no_rules", "a policy needs at least one rule (write a deny-all rule explicitly)"
        )
    return rules


class Governance(PolicyModel):
    """Who must approve the next policy version before it takes effect."""

    require_approvals: ApprovalRequirement


class Policy(PolicyModel):
    version: Literal[1]
    allowlists: dict[Name, tuple[AllowlistEntry, ...]] = Field(default_factory=dict)
    limits: tuple[Limit, ...] = ()
    rules: Annotated[tuple[Rule, ...], AfterValidator(_at_least_one_rule)]
    governance: Governance | None = None
    breakers: Breakers | None = None
    """Conditions that freeze signing by themselves (custody.policy.breakers)."""

    @field_validator("version", mode="before")
    @classmethod
    def _exact_version(cls, value: object) -> object:
        # True == 1 and 1.0 == 1 in Python; neither is a version someone meant to write.
        if type(value) is not int or value != 1:
            raise PydanticCustomError("unsupported_version", "unsupported version (expected 1)")
        return value

    @model_validator(mode="after")
    def _references_resolve(self, info: ValidationInfo) -> Policy:
        problems = reference_problems(self)
        if not (info.context or {}).get(STORED):
            # Checks the language gained later than a stored version must not make it unreadable.
            problems += amount_unit_problems(self)
        if problems:
            # One error carrying all problems with their own locations; the loader unpacks it.
            summary = "; ".join(
                f"{'.'.join(map(str, loc))}: {message}" for loc, message in problems
            )
            raise PydanticCustomError(
                "policy_references", "{summary}", {"summary": summary, "problems": problems}
            )
        return self
