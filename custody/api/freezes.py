"""`/v1/freezes`: operator clients stop signing in one call; approvers sign lifts under governance.

Freezing is the safe direction, so an operator client may do it alone. Lifting is not offered to
clients: `custody unfreeze` lifts (at once, or once the governance quorum signed it here).
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from custody.api.deps import BodyDep, OperatorDep, RuntimeDep, approval_fields
from custody.api.openapi import json_body
from custody.errors import ValidationFailed
from custody.freezes import repository as freezes
from custody.freezes import service, unfreezes, views
from custody.freezes.schemas import FreezeList, FreezeView, UnfreezeAnswer
from custody.http.problems import problem_responses
from custody.intake.jsonbody import parse_object

router = APIRouter(
    prefix="/v1/freezes",
    tags=["freezes"],
    responses=problem_responses(400, 401, 403, 413, 422, 500, 503),
)


@router.post(
    "",
    status_code=201,
    summary="Freeze signing: of the whole installation, or of one wallet (operator clients)",
    responses=problem_responses(404) | {200: {"description": "already frozen for this reason"}},
    openapi_extra=json_body(
        "FreezeBody",
        "Why, and optionally which wallet. The same scope and reason while that freeze is "
        "active answer 200 with it, and change nothing.",
    ),
)
def freeze(response: Response, rt: RuntimeDep, caller: OperatorDep, body: BodyDep) -> FreezeView:
    data = parse_object(body)
    unknown = set(data) - {"reason", "wallet"}
    if unknown:
        raise ValidationFailed(f"unknown fields: {', '.join(sorted(unknown))}")
    wallet = data.get("wallet")
    if wallet is not None and not isinstance(wallet, str):
        raise ValidationFailed("wallet must be a wallet's name")
    with rt.db.write() as session:
        row, new = service.freeze_named(
            session,
            wallet=wallet,
            reason=data.get("reason"),
            actor=f"client:{caller.id}",
            source=f"client:{caller.id}",
        )
        (view,) = views.freeze_views(session, [row])
    if not new:
        response.status_code = 200
    return view


@router.get("", summary="The freezes in force (operator clients)")
def list_freezes(rt: RuntimeDep, _caller: OperatorDep) -> FreezeList:
    with rt.db.read() as session:
        return FreezeList(items=views.freeze_views(session, freezes.active(session)))


@router.post(
    "/{freeze_id}/approvals",
    summary="Governance: an approver's device-key decision on lifting a freeze",
    responses=problem_responses(404, 409),
    openapi_extra=json_body(
        "ApprovalBody",
        "The decision and its device-key signature over the RFC 8785 JSON of "
        '{"type": "custody.unfreeze.v1", "freeze", "unfreeze", "decision", "approver"} '
        "(ids as strings).",
    ),
)
def decide_unfreeze(freeze_id: int, rt: RuntimeDep, body: BodyDep) -> UnfreezeAnswer:
    """Authenticated by the signature, not by a client token (like request approvals)."""
    data = approval_fields(body)
    with rt.db.read() as session:
        verified = unfreezes.verify_decision(
            session,
            freeze_id=freeze_id,
            approver_name=data.get("approver"),
            decision=data.get("decision"),
            signature=data.get("signature"),
        )
    with rt.db.write() as session:
        decided = unfreezes.record_decision(session, verified)
    if decided.lifted:
        rt.notify_signer()  # what waited for this freeze can be signed now
    return UnfreezeAnswer(
        freeze=decided.freeze_id,
        unfreeze=decided.unfreeze_id,
        state=decided.state,
        lifted=decided.lifted,
        quorum=decided.quorum.view(),
    )
