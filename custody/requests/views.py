"""How a request looks to its client over the API (and in `custody requests` output)."""

from __future__ import annotations

import json
from typing import Any

from custody.requests.states import RequestStatus
from custody.store.models import Request


def request_view(request: Request, wallet_name: str) -> dict[str, Any]:
    decision = json.loads(request.policy_decision)
    view: dict[str, Any] = {
        "id": request.id,
        "status": request.status,
        "type": request.type,
        "wallet": wallet_name,
        "asset": request.asset,
        "amount": request.amount,
        "destination": request.destination,
        "policy": decision,
        "payload": {
            "digest": request.digest,
            "summary": request.summary,
            "transaction": json.loads(request.payload),
        },
        "approvals": approvals_before_any(request, decision),
        "created_at": _rfc3339(request),
    }
    if request.status == RequestStatus.SIGNED:
        if request.result_signature is not None:
            view["result"] = {"signature": request.result_signature}
        else:
            view["result"] = {
                "raw_transaction": request.result_raw,
                "tx_hash": request.result_tx_hash,
            }
    if request.failure_reason:
        view["reason"] = request.failure_reason
    return view


def approvals_before_any(request: Request, decision: dict[str, Any]) -> dict[str, Any]:
    """The `approvals` part before anyone decided; the API shows the live one
    (custody.approvals.service.approvals_view), in the same shape."""
    groups = decision.get("all_of") or (
        [{"group": decision["group"], "count": decision["count"]}]
        if decision.get("decision") == "require_approvals"
        else []
    )
    return {
        "required": sum(int(g["count"]) for g in groups),
        "group": decision.get("group"),
        "quorum": {
            "required": [{"group": g["group"], "count": g["count"]} for g in groups],
            "received": {g["group"]: [] for g in groups},
            "met": not groups,
        },
        "decisions": [],
        "expires_at": request.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        if request.expires_at
        else None,
    }


def _rfc3339(request: Request) -> str:
    return request.created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
