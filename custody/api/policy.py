"""`POST /v1/policy/simulate`: what the active policy would decide, with nothing stored."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from custody.api.deps import BodyDep, ClientDep, RuntimeDep
from custody.approvals.policy_approvals import approve_proposal_with_device_key
from custody.decisions.service import decide
from custody.errors import ValidationFailed
from custody.intake.decoders import decode
from custody.intake.jsonbody import parse_object

router = APIRouter(prefix="/v1/policy", tags=["policy"])


@router.post("/simulate", summary="Dry run: decode a request body and decide it, storing nothing")
def simulate(rt: RuntimeDep, client: ClientDep, body: BodyDep) -> dict[str, Any]:
    with rt.db.read() as session:
        draft = decode(session, parse_object(body))
        facts = draft.facts(client.name)
        active, decision = decide(session, facts, exclude_request=None)
        return {
            "policy": decision.to_dict(),
            "policy_digest": active.digest if active else None,
            "facts": facts.to_dict(),
            "payload": {"digest": draft.digest, "summary": draft.summary},
            "stored": False,
        }


@router.post(
    "/proposals/{version}/approvals",
    summary="Governance: an approver's device-key decision on a proposed policy version",
)
def approve_proposal(version: int, rt: RuntimeDep, body: BodyDep) -> dict[str, Any]:
    data = parse_object(body)
    unknown = set(data) - {"approver", "decision", "signature"}
    if unknown:
        raise ValidationFailed(f"unknown fields: {', '.join(sorted(unknown))}")
    with rt.db.write() as session:
        state = approve_proposal_with_device_key(
            session,
            version_id=version,
            approver_name=data.get("approver"),
            decision=data.get("decision"),
            signature=data.get("signature"),
        )
    return {"version": version, "state": state}
