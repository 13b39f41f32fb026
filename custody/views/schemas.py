"""A request as its client sees it over HTTP (and in webhook bodies): the response models.

`result` and `reason` are absent until there is one, as they always were; every other key is
present, null when empty. Field order is the order clients have always received.
"""

from __future__ import annotations

from pydantic import Field

from custody.approvals.schemas import ApprovalsView
from custody.chains.schemas import TransactionPayload
from custody.freezes.schemas import WaitingView
from custody.jsonshape import DecimalString, HexDigest, JsonModel, Rfc3339, absent
from custody.policy.stored import StoredDecision
from custody.policy.values import RequestType
from custody.requests.states import RequestStatus


class PayloadView(JsonModel):
    digest: HexDigest = Field(description="what the HSM signs and approvals name")
    summary: str
    transaction: TransactionPayload


class SignedTransaction(JsonModel):
    raw_transaction: str = Field(pattern=r"^0x([0-9a-f]{2})*$")
    tx_hash: HexDigest
    block_number: int | None = absent("on a connected chain: the block of its receipt")
    confirmations: int | None = absent(
        "on a connected chain: blocks on top of it, its own included"
    )


class BitcoinTransaction(JsonModel):
    """A PSBT with custody's signatures; once M are in, the finalized transaction and its id."""

    psbt: str = Field(description="base64 BIP-174 with custody's partial signatures")
    raw_transaction: str | None = Field(
        default=None, pattern=r"^([0-9a-f]{2})+$", description="hex, ready to broadcast"
    )
    txid: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class MessageSignature(JsonModel):
    signature: str = Field(
        pattern=r"^0x[0-9a-f]{130}$", description="r || s || v (v = 27 + y-parity), low-s"
    )


class RequestView(JsonModel):
    id: str
    status: RequestStatus
    type: RequestType
    wallet: str
    asset: str
    amount: DecimalString
    destination: str | None
    policy: StoredDecision
    payload: PayloadView
    approvals: ApprovalsView
    created_at: Rfc3339
    result: SignedTransaction | MessageSignature | BitcoinTransaction | None = absent(
        "present once signed"
    )
    reason: str | None = absent("why a request was rejected, failed or stopped")
    waiting: WaitingView | None = absent(
        "why a live request is not signed now: the freezes that cover it (issue 9 §3)"
    )
    replaces: str | None = absent("the request whose transaction this one replaces")
    replaced_by: str | None = absent(
        "the request that replaces this one's transaction (live reads only)"
    )


class RequestPage(JsonModel):
    items: list[RequestView]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: last")
