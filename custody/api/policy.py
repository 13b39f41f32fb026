"""`POST /v1/policy/simulate`: what the active policy would decide, with nothing stored."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from custody.api.deps import BodyDep, ClientDep, RuntimeDep
from custody.intake.decide import decide
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
