"""`/v1/webhooks`: the key that signs webhook bodies, so receivers can verify them."""

from __future__ import annotations

from fastapi import APIRouter

from custody.api.deps import AnyClientDep, RuntimeDep
from custody.api.schemas import WebhookKey
from custody.http.problems import problem_responses
from custody.webhooks.signing import public_key as webhook_public_key

router = APIRouter(
    prefix="/v1/webhooks", tags=["webhooks"], responses=problem_responses(401, 429, 500, 503)
)


@router.get("/public-key", summary="The Ed25519 key that signs webhook bodies")
def public_key(rt: RuntimeDep, _client: AnyClientDep) -> WebhookKey:
    return WebhookKey.model_validate(webhook_public_key(rt).as_dict())
