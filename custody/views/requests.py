"""How a request looks to its client over the API, in webhook bodies and idempotent replays."""

from __future__ import annotations

from typing import Any

from custody.approvals.schemas import ApprovalsView
from custody.approvals.views import before_any
from custody.chains.schemas import read_payload
from custody.freezes.schemas import WaitingView
from custody.policy.stored import read_decision
from custody.policy.values import RequestType
from custody.requests.states import RequestStatus
from custody.store.models import Request
from custody.views.schemas import (
    BitcoinTransaction,
    MessageSignature,
    PayloadView,
    RequestView,
    SignedTransaction,
)


def request_model(
    request: Request,
    wallet_name: str,
    approvals: ApprovalsView | None = None,
    waiting: WaitingView | None = None,
    replaced_by: str | None = None,
) -> RequestView:
    """`approvals`: the live state; without it, the state before anyone decided. `waiting`: the
    freezes that hold it now (live reads only: stored answers and webhooks never carry it), as
    does `replaced_by`: the request that replaces this one now."""
    decision = read_decision(request.policy_decision)
    return RequestView(
        id=request.id,
        status=RequestStatus(request.status),
        type=RequestType(request.type),
        wallet=wallet_name,
        asset=request.asset,
        amount=request.amount,
        destination=request.destination,
        policy=decision,
        payload=PayloadView(
            digest=request.digest,
            summary=request.summary,
            transaction=read_payload(request.payload),
        ),
        approvals=approvals or before_any(request, decision),
        created_at=request.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        result=_result(request),
        reason=request.failure_reason or None,
        waiting=waiting,
        replaces=request.replaces,
        replaced_by=replaced_by,
    )


def request_view(request: Request, wallet_name: str) -> dict[str, Any]:
    """The JSON form, for stored first answers and webhook bodies."""
    return request_model(request, wallet_name).model_dump(mode="json")


def _result(
    request: Request,
) -> SignedTransaction | MessageSignature | BitcoinTransaction | None:
    # Once signed it stays visible: broadcast, confirmed, and failed after signing (reverted or
    # dropped) too, since the signature is out either way.
    if request.signed_at is None:
        return None
    if request.result_psbt is not None:
        return BitcoinTransaction(
            psbt=request.result_psbt,
            raw_transaction=request.result_raw,
            txid=request.result_tx_hash,
        )
    if request.result_signature is not None:
        return MessageSignature(signature=request.result_signature)
    # The signer stores the raw transaction and its hash together, in the `signed` transition.
    assert request.result_raw is not None
    assert request.result_tx_hash is not None
    if request.block_number is None:
        return SignedTransaction(raw_transaction=request.result_raw, tx_hash=request.result_tx_hash)
    return SignedTransaction(
        raw_transaction=request.result_raw,
        tx_hash=request.result_tx_hash,
        block_number=request.block_number,
        confirmations=request.confirmations,
    )
