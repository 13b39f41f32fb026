"""`POST /v1/configuration/seals/{epoch}/approvals`: a governance approver decides on a change.

The same decision `custody config approve` records (custody.approvals.configuration_approvals),
authenticated by the device-key signature, not by a client token, like request approvals. The
signer counts it again, with the device key the configuration in effect seals.
"""

from __future__ import annotations

from fastapi import APIRouter

from custody.api.deps import BodyDep, RuntimeDep, approval_fields
from custody.api.openapi import json_body
from custody.api.schemas import ConfigurationDecisionAnswer
from custody.approvals import configuration_approvals
from custody.http.problems import problem_responses

router = APIRouter(
    prefix="/v1/configuration",
    tags=["configuration"],
    responses=problem_responses(400, 401, 403, 413, 422, 429, 500, 503),
)


@router.post(
    "/seals/{epoch}/approvals",
    summary="Governance: an approver's device-key decision on a configuration seal",
    responses=problem_responses(404, 409),
    openapi_extra=json_body(
        "ApprovalBody",
        "The decision and its device-key signature over the RFC 8785 JSON of "
        '{"type": "custody.configuration_approval.v1", "epoch", "digest", "decision", '
        '"approver"} (the epoch as a string).',
    ),
)
def decide_configuration(epoch: int, rt: RuntimeDep, body: BodyDep) -> ConfigurationDecisionAnswer:
    data = approval_fields(body)
    with rt.db.read() as session:
        verified = configuration_approvals.verify_decision(
            session,
            epoch=epoch,
            approver_name=data.get("approver"),
            decision=data.get("decision"),
            signature=data.get("signature"),
        )
    with rt.db.write() as session:
        recorded = configuration_approvals.record_decision(session, verified)
    rt.notify_signer()
    return ConfigurationDecisionAnswer.model_validate(
        {"epoch": recorded.epoch, "approver": recorded.approver, "decision": recorded.decision}
    )
