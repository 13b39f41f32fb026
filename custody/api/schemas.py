"""Response models of the API's smaller endpoints: policy dry runs, webhook key, operations.

Requests, approvals and ledger answers have their own models next to their domains
(`custody.views.schemas`, `custody.approvals.schemas`, `custody.ledger.schemas`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from custody.approvals.schemas import QuorumView
from custody.jsonshape import DecimalString, HexDigest, JsonModel
from custody.policy.stored import StoredDecision


class FactsView(JsonModel):
    """What the policy judged: the facts intake states for a request, never the raw payload."""

    type: str = Field(description="as judged: an ERC-20 transfer is judged as a withdrawal")
    wallet: str
    chain: str
    asset: str
    amount: DecimalString
    destination: str | None
    client: str | None
    contract: str | None
    method_selector: str | None
    call_flags: list[str]
    venue: str | None
    primary_type: str | None
    wallet_address: str | None = Field(description="the signing wallet's own address")
    receiver: str | None = Field(description="a trade: who the venue pays what it buys")
    receives_asset: str | None = Field(description="a trade: the asset it buys")
    receives_amount: DecimalString | None = Field(
        description="a trade: base units of receives_asset it buys"
    )


class PayloadSummary(JsonModel):
    digest: HexDigest
    summary: str


class Simulation(JsonModel):
    policy: StoredDecision
    policy_digest: str | None = Field(description="the active policy's digest; null: none active")
    facts: FactsView
    payload: PayloadSummary
    stored: Literal[False]


class ProposalAnswer(JsonModel):
    version: int
    state: Literal["proposed", "applied", "rejected"] = Field(
        description="the proposal's state after this decision"
    )


class ConfigurationDecisionAnswer(JsonModel):
    epoch: int = Field(description="the configuration seal decided on")
    approver: str
    decision: Literal["approve", "reject"]


class CeremonyDecisionAnswer(JsonModel):
    proposal: int
    state: Literal["pending", "rejected", "used"] = Field(
        description="the ceremony proposal's state after this decision"
    )
    quorum: QuorumView = Field(
        description="the approvals that count now; the ceremony command counts them again"
    )


class WebhookKey(JsonModel):
    algorithm: Literal["ed25519"]
    key_id: str
    public_key: str = Field(description="hex")
    public_key_pem: str


class Health(JsonModel):
    status: Literal["ok"]


class ReadinessChecks(JsonModel):
    database: str
    hsm: str


class Readiness(JsonModel):
    status: Literal["ready"]
    checks: ReadinessChecks
