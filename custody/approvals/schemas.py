"""Approvals as clients and approvers see them over HTTP: what is needed and who decided."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from custody.jsonshape import JsonModel, Rfc3339
from custody.requests.states import RequestStatus


class QuorumRequirementView(JsonModel):
    group: str
    count: int


class QuorumView(JsonModel):
    required: list[QuorumRequirementView]
    received: dict[str, list[str]] = Field(
        description="group -> approvers whose approval counts for it now (enabled, still members)"
    )
    met: bool


class ApprovalDecisionView(JsonModel):
    approver: str
    decision: Literal["approve", "reject"]
    method: str = Field(description="device_key or webauthn")
    at: Rfc3339


class ApprovalsView(JsonModel):
    """The `approvals` part of a request: the same shape before and after anyone decided."""

    required: int = Field(description="distinct approvals needed in all; 0 when none are")
    group: str | None = Field(description="the one group asked, or null (none, or several)")
    quorum: QuorumView
    decisions: list[ApprovalDecisionView]
    expires_at: Rfc3339 | None


class ApprovalAnswer(JsonModel):
    """`POST /v1/requests/{id}/approvals`: the request's state after this decision."""

    request: str
    status: RequestStatus
    quorum: QuorumView


class ApprovalBody(JsonModel):
    """A device-key decision: `signature` is Ed25519 (base64) over the RFC 8785 canonical JSON of
    `{"type": "custody.approval.v1", "request_id", "payload_digest", "decision", "approver"}`
    (for a policy proposal: `custody.policy_approval.v1` with `version` and `policy_digest`)."""

    approver: str
    decision: Literal["approve", "reject"]
    signature: str = Field(description="base64 Ed25519 signature over the approval statement")
