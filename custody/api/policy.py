"""`POST /v1/policy/simulate`: what the active policy would decide, with nothing stored."""

from __future__ import annotations

from fastapi import APIRouter

from custody.api.deps import BodyDep, ClientDep, RuntimeDep, approval_fields
from custody.api.openapi import json_body
from custody.api.schemas import FactsView, PayloadSummary, ProposalAnswer, Simulation
from custody.approvals import policy_approvals
from custody.decisions.service import decide
from custody.http.problems import problem_responses
from custody.intake.decoders import decode
from custody.intake.evmfill import DRY_RUN_FILL, Incomplete
from custody.intake.jsonbody import parse_object
from custody.policy.stored import stored_decision

router = APIRouter(
    prefix="/v1/policy",
    tags=["policy"],
    responses=problem_responses(400, 401, 403, 413, 422, 429, 500, 503),
)


@router.post(
    "/simulate",
    summary="Dry run: decode a request body and decide it, storing nothing",
    openapi_extra=json_body("RequestBody", "A body as `POST /v1/requests` would take it."),
)
def simulate(rt: RuntimeDep, client: ClientDep, body: BodyDep) -> Simulation:
    with rt.db.read() as session:
        data = parse_object(body)
        try:
            draft = decode(session, data)
        except Incomplete:
            # A connected chain fills nonce, gas and fees when the request is stored; the policy
            # does not judge them, so a dry run decides on placeholders (its digest is not the
            # one a stored request will have).
            draft = decode(session, data, DRY_RUN_FILL)
        facts = draft.facts(client.name)
        active, decision = decide(session, facts, exclude_request=None)
        return Simulation(
            policy=stored_decision(decision),
            policy_digest=active.digest if active else None,
            facts=FactsView.model_validate(facts.to_dict()),
            payload=PayloadSummary(digest=draft.digest, summary=draft.summary),
            stored=False,
        )


@router.post(
    "/proposals/{version}/approvals",
    summary="Governance: an approver's device-key decision on a proposed policy version",
    responses=problem_responses(404, 409),
    openapi_extra=json_body("ApprovalBody", "The decision and its device-key signature."),
)
def approve_proposal(version: int, rt: RuntimeDep, body: BodyDep) -> ProposalAnswer:
    data = approval_fields(body)
    with rt.db.read() as session:
        verified = policy_approvals.verify_decision(
            session,
            version_id=version,
            approver_name=data.get("approver"),
            decision=data.get("decision"),
            signature=data.get("signature"),
        )
    with rt.db.write() as session:
        state = policy_approvals.record_decision(session, verified)
    return ProposalAnswer.model_validate({"version": version, "state": state})
