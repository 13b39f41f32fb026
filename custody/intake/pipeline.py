"""Intake, top to bottom: from a client's body to a stored request with its policy decision.

Runs inside the caller's write transaction. Nothing is signed here: allowed requests become
`approved` and the signer worker takes them (so the HTTP handler never holds the HSM).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from custody.approvals.deadlines import approval_deadline
from custody.clients.auth import AuthenticatedClient
from custody.decisions.service import decide
from custody.freezes import breakers
from custody.intake.decoders import decode
from custody.intake.draft import Draft
from custody.intake.errors import IdempotencyConflict, InvalidBody, NonceInUse
from custody.intake.jsonbody import parse_object
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.policy import Decision, RequireApprovals
from custody.policy_versions.service import ActivePolicy
from custody.requests import lifecycle
from custody.requests import repository as requests
from custody.requests.states import RequestStatus
from custody.store.base import utcnow
from custody.store.models import Request
from custody.views.requests import request_view

MAX_IDEMPOTENCY_KEY = 200


@dataclass(frozen=True)
class Submission:
    view: dict[str, Any]
    replayed: bool


def submit(
    session: Session,
    *,
    client: AuthenticatedClient,
    idempotency_key: str | None,
    body: bytes,
    max_fee_wei: int,
    requested_by_approver: str | None = None,
) -> Submission:
    """`requested_by_approver`: the person who started it in the approver app (the maker)."""
    key = _check_idempotency_key(idempotency_key)
    body_hash = hashlib.sha256(body).hexdigest()

    # (1) idempotency: the same key and body answer exactly as the first time
    earlier = requests.by_idempotency_key(session, client.id, key)
    if earlier is not None:
        return _replay(earlier, key, body_hash)

    # (2) decode: strict JSON into a draft whose payload and digest can no longer change
    draft = decode(session, parse_object(body))
    if draft.max_fee is not None and draft.max_fee > max_fee_wei:
        raise InvalidBody(
            f"the transaction may pay up to {draft.max_fee} wei in fees (gas x max_fee_per_gas), "
            f"above this installation's cap of {max_fee_wei} (CUSTODY_MAX_TX_FEE_WEI)"
        )

    # (3) from here on, requests are decided one at a time: the ledger head lock serialises
    #     this transaction with every other writer, so limits see all committed requests
    ledger.lock(session)

    # (4) one live request per wallet and nonce (the database enforces it too)
    if draft.nonce is not None:
        holder = requests.live_for_nonce(session, draft.wallet.id, draft.nonce)
        if holder is not None and holder.client_id == client.id and holder.idempotency_key == key:
            return _replay(holder, key, body_hash)  # a concurrent call with this key won
        if holder is not None:
            shown = holder.id if holder.client_id == client.id else "(another client's)"
            raise NonceInUse(
                f"nonce {draft.nonce} of wallet {draft.wallet.name} is already taken by request "
                f"{shown} ({holder.status})"
            )

    # (5) evaluate the active policy and its limits; no policy means deny
    facts = draft.facts(client.name)
    active, decision = decide(session, facts, exclude_request=None)

    # (6) store the request and its ledger entries in this one transaction
    request = _store(
        session,
        client,
        draft,
        key=key,
        body=body,
        body_hash=body_hash,
        decision=decision,
        active=active,
        requested_by_approver=requested_by_approver,
    )
    request.facts = json.dumps(facts.to_dict(), sort_keys=True)
    if isinstance(decision, RequireApprovals):
        request.expires_at = approval_deadline(decision, request.created_at)
    view = request_view(request, draft.wallet.name)
    request.first_response = json.dumps(view, sort_keys=True)
    session.flush()

    # (7) circuit breakers: a denial or a spike may freeze signing, committed with the request
    breakers.after_intake(
        session,
        request=request,
        client=client.name,
        wallet=draft.wallet.name,
        decision=decision,
        active=active,
    )
    return Submission(view=view, replayed=False)


def _replay(earlier: Request, key: str, body_hash: str) -> Submission:
    if earlier.body_hash != body_hash:
        raise IdempotencyConflict(
            f"Idempotency-Key {key!r} was used for a different body (request {earlier.id})"
        )
    return Submission(view=json.loads(earlier.first_response), replayed=True)


def _check_idempotency_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise InvalidBody("the Idempotency-Key header is required")
    if len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise InvalidBody(
            f"Idempotency-Key must be printable and at most {MAX_IDEMPOTENCY_KEY} characters"
        )
    return key


def status_for(decision: Decision) -> RequestStatus:
    return {
        "allow": RequestStatus.APPROVED,
        "deny": RequestStatus.REJECTED,
        "require_approvals": RequestStatus.PENDING_APPROVAL,
    }[decision.decision]


def _store(
    session: Session,
    client: AuthenticatedClient,
    draft: Draft,
    *,
    key: str,
    body: bytes,
    body_hash: str,
    decision: Decision,
    active: ActivePolicy | None,
    requested_by_approver: str | None,
) -> Request:
    now = utcnow()
    request = Request(
        id="req_" + secrets.token_hex(12),
        client_id=client.id,
        idempotency_key=key,
        body_hash=body_hash,
        type=draft.type,
        wallet_id=draft.wallet.id,
        asset=draft.asset,
        amount=str(draft.amount),
        destination=draft.destination,
        evm_nonce=draft.nonce,
        payload=json.dumps(draft.payload, sort_keys=True),
        digest=draft.digest,
        summary=draft.summary,
        policy_version_id=active.version_id if active else None,
        policy_decision=json.dumps(decision.to_dict(), sort_keys=True),
        first_response="{}",
        client_body=body,
        client_token=client.token,
        signing_attempts=0,
        requested_by_approver=requested_by_approver,
        created_at=now,
        updated_at=now,
    )
    created = {
        "type": draft.type,
        "wallet": draft.wallet.name,
        "chain": draft.chain.name,
        "asset": draft.asset,
        "amount": str(draft.amount),
        "destination": draft.destination,
        "idempotency_key": key,
        "body_hash": body_hash,
        "payload": draft.payload,
        "digest": draft.digest,
        "details": draft.details,
        "requested_by_approver": requested_by_approver,
    }
    lifecycle.create(
        session,
        request,
        status_for(decision),
        actor=f"client:{client.id}",
        reason=decision.reason,
        **created,
    )
    ledger.append(
        session,
        EventKind.POLICY_EVALUATED,
        "policy",
        {
            "request": request.id,
            "policy_digest": active.digest if active else None,
            "result": decision.to_dict(),
        },
    )
    return request
