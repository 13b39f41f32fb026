"""Freezes as operators, operator clients and trading clients see them over HTTP and the CLI."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from custody.approvals.schemas import QuorumRequirementView, QuorumView
from custody.jsonshape import JsonModel, Rfc3339, absent

Scope = Literal["installation", "wallet"]
UnfreezeState = Literal["pending", "applied", "rejected", "superseded"]


class FreezeRef(JsonModel):
    """A freeze as a request's client sees it: what stops its request, and since when."""

    id: int
    scope: Scope
    wallet: str | None = Field(description="the frozen wallet; null when all signing is frozen")
    reason: str
    since: Rfc3339


class WaitingView(JsonModel):
    """Why a live request is not signed now, though nothing is wrong with it."""

    reason: str = Field(description="in words, for people")
    freezes: list[FreezeRef] = Field(description="every active freeze that covers the request")
    hsm: str | None = absent(
        "what is wrong with the HSM, while an approved request waits for it (issue 10)"
    )


class UnfreezeDecisionView(JsonModel):
    approver: str
    decision: Literal["approve", "reject"]
    at: Rfc3339


class UnfreezeView(JsonModel):
    """A lift waiting for (or decided by) the governance quorum."""

    id: int
    reason: str
    requested_by: str
    requested_at: Rfc3339
    state: UnfreezeState
    required_approvals: list[QuorumRequirementView]
    decisions: list[UnfreezeDecisionView]
    statement: dict[str, str] = Field(
        description="what each approver's device key signs: this object with `decision` "
        "(approve or reject) and `approver` (their name) added, as RFC 8785 canonical JSON"
    )


class FreezeView(JsonModel):
    id: int
    scope: Scope
    wallet: str | None
    reason: str
    actor: str
    source: str = Field(description="operator, client:<id>, breaker:<id> or signer")
    created_at: Rfc3339
    lifted_at: Rfc3339 | None
    lifted_by: str | None
    lift_reason: str | None
    unfreeze: UnfreezeView | None = Field(description="the lift waiting for its quorum, if any")


class FreezeList(JsonModel):
    items: list[FreezeView]


class FreezeBody(JsonModel):
    """`POST /v1/freezes`: freeze all signing, or one wallet's."""

    reason: str = Field(min_length=1, max_length=500)
    wallet: str | None = absent("a wallet's name: freeze only it")


class UnfreezeAnswer(JsonModel):
    """`POST /v1/freezes/{id}/approvals`: where the lift stands after this decision."""

    freeze: int
    unfreeze: int
    state: UnfreezeState
    lifted: bool = Field(description="whether the freeze is lifted now")
    quorum: QuorumView
