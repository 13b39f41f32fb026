"""`POST /v1/ceremonies/proposals/{id}/approvals`: an approver's phone decides on a ceremony.

The same decision `custody ceremony approve` records (custody.approvals.ceremony_approvals),
authenticated by the device-key signature, not by a client token, like request approvals.
"""

from __future__ import annotations

from fastapi import APIRouter

from custody.api.deps import BodyDep, RuntimeDep, approval_fields
from custody.api.openapi import json_body
from custody.api.schemas import CeremonyDecisionAnswer
from custody.approvals import ceremony_approvals
from custody.http.problems import problem_responses

router = APIRouter(
    prefix="/v1/ceremonies",
    tags=["ceremonies"],
    responses=problem_responses(400, 401, 403, 413, 422, 429, 500, 503),
)


@router.post(
    "/proposals/{proposal_id}/approvals",
    summary="Governance: an approver's device-key decision on a key ceremony proposal",
    responses=problem_responses(404, 409),
    openapi_extra=json_body(
        "ApprovalBody",
        "The decision and its device-key signature over the RFC 8785 JSON of "
        '{"type": "custody.ceremony_approval.v1", "proposal", "ceremony", "subject_sha256", '
        '"decision", "approver"} (the id as a string).',
    ),
)
def decide_ceremony(proposal_id: int, rt: RuntimeDep, body: BodyDep) -> CeremonyDecisionAnswer:
    data = approval_fields(body)
    with rt.db.read() as session:
        verified = ceremony_approvals.verify_decision(
            session,
            proposal_id=proposal_id,
            approver_name=data.get("approver"),
            decision=data.get("decision"),
            signature=data.get("signature"),
        )
    with rt.db.write() as session:
        decided = ceremony_approvals.record_decision(session, verified)
    return CeremonyDecisionAnswer.model_validate(
        {"proposal": decided.proposal_id, "state": decided.state, "quorum": decided.quorum.view()}
    )
