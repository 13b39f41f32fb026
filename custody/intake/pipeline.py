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

from custody.chains import Chain as ChainInfo
from custody.chains import Eip1559Fields, build_eip1559, summary
from custody.clients.auth import AuthenticatedClient
from custody.intake.errors import IdempotencyConflict, InvalidBody, NonceInUse
from custody.intake.jsonbody import parse_object
from custody.intake.schemas import WithdrawalIntent, parse_withdrawal
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.policy import Decision, Deny, RequestFacts, evaluate
from custody.policy.versions import ActivePolicy, active_policy
from custody.requests import repository as requests
from custody.requests.states import RequestStatus
from custody.requests.views import request_view
from custody.store.base import utcnow
from custody.store.models import Chain, Request, Wallet
from custody.wallets import repository as wallets

MAX_IDEMPOTENCY_KEY = 200


@dataclass(frozen=True)
class Submission:
    view: dict[str, Any]
    replayed: bool


def submit(
    session: Session, *, client: AuthenticatedClient, idempotency_key: str | None, body: bytes
) -> Submission:
    key = _check_idempotency_key(idempotency_key)
    body_hash = hashlib.sha256(body).hexdigest()

    # (1) idempotency: the same key and body answer exactly as the first time
    earlier = requests.by_idempotency_key(session, client.id, key)
    if earlier is not None:
        return _replay(earlier, key, body_hash)

    # (2) decode: strict JSON into a validated intent
    intent = parse_withdrawal(parse_object(body))

    # (3) resolve wallet and chain; the asset must be the chain's native one for a withdrawal
    wallet = wallets.wallet_by_name(session, intent.wallet)
    chain = wallets.chain_by_id(session, wallet.chain_id)
    if intent.asset != chain.native_asset:
        raise InvalidBody(
            f"asset {intent.asset!r} is not the native asset of chain {chain.name} "
            f"({chain.native_asset}); token transfers are contract calls"
        )

    # (4) fix the payload and its digest: from here on nothing about it can change
    unsigned = build_eip1559(_fields(intent, chain))
    draft = Draft(
        intent=intent,
        wallet=wallet,
        chain=chain,
        payload=unsigned.payload,
        digest=unsigned.digest.prefixed(),
        key=key,
        body_hash=body_hash,
    )

    # (5) one live request per wallet and nonce (the database enforces it too)
    holder = requests.live_for_nonce(session, wallet.id, intent.nonce)
    if holder is not None and holder.client_id == client.id and holder.idempotency_key == key:
        # A concurrent call with this key committed between step (1) and here.
        return _replay(holder, key, body_hash)
    if holder is not None:
        shown = holder.id if holder.client_id == client.id else "(another client's)"
        raise NonceInUse(
            f"nonce {intent.nonce} of wallet {wallet.name} is already taken by request "
            f"{shown} ({holder.status})"
        )

    # (6) evaluate the active policy; no policy means deny
    active = active_policy(session)
    decision = _decide(active, draft, client)

    # (7) store the request and its ledger entries in this one transaction
    request = _store(session, client, draft, decision, active)
    view = request_view(request, wallet.name)
    request.first_response = json.dumps(view, sort_keys=True)
    session.flush()
    return Submission(view=view, replayed=False)


@dataclass(frozen=True)
class Draft:
    """A decoded request with its payload fixed, not yet decided or stored."""

    intent: WithdrawalIntent
    wallet: Wallet
    chain: Chain
    payload: dict[str, str]
    digest: str
    key: str
    body_hash: str


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


def _fields(intent: WithdrawalIntent, chain: Chain) -> Eip1559Fields:
    return Eip1559Fields(
        chain_id=chain.evm_chain_id,
        nonce=intent.nonce,
        to=intent.destination,
        value=intent.amount.value,
        gas=intent.gas,
        max_fee_per_gas=intent.max_fee_per_gas,
        max_priority_fee_per_gas=intent.max_priority_fee_per_gas,
    )


def _decide(active: ActivePolicy | None, draft: Draft, client: AuthenticatedClient) -> Decision:
    if active is None:
        return Deny(None, "no policy has been applied: everything is denied")
    facts = RequestFacts(
        type="withdrawal",
        wallet=draft.wallet.name,
        chain=draft.chain.name,
        asset=draft.intent.asset,
        amount=draft.intent.amount.value,
        destination=str(draft.intent.destination),
        client=client.name,
    )
    return evaluate(active.policy, facts)


def _status_for(decision: Decision) -> RequestStatus:
    return {
        "allow": RequestStatus.APPROVED,
        "deny": RequestStatus.REJECTED,
        "require_approvals": RequestStatus.PENDING_APPROVAL,
    }[decision.decision]


def chain_info(chain: Chain) -> ChainInfo:
    return ChainInfo(
        name=chain.name,
        kind="evm",
        evm_chain_id=chain.evm_chain_id,
        native_asset=chain.native_asset,
        native_decimals=chain.native_decimals,
    )


def _store(
    session: Session,
    client: AuthenticatedClient,
    draft: Draft,
    decision: Decision,
    active: ActivePolicy | None,
) -> Request:
    now = utcnow()
    status = _status_for(decision)
    intent = draft.intent
    request = Request(
        id="req_" + secrets.token_hex(12),
        client_id=client.id,
        idempotency_key=draft.key,
        body_hash=draft.body_hash,
        type="withdrawal",
        wallet_id=draft.wallet.id,
        asset=intent.asset,
        amount=str(intent.amount),
        destination=str(intent.destination),
        evm_nonce=intent.nonce,
        status=status.value,
        payload=json.dumps(draft.payload, sort_keys=True),
        digest=draft.digest,
        summary=summary(draft.payload, chain_info(draft.chain)),
        policy_version_id=active.version_id if active else None,
        policy_decision=json.dumps(decision.to_dict(), sort_keys=True),
        first_response="{}",
        signing_attempts=0,
        created_at=now,
        updated_at=now,
    )
    session.add(request)
    session.flush()
    ledger.append(
        session,
        EventKind.REQUEST_CREATED,
        f"client:{client.id}",
        {
            "request": request.id,
            "type": "withdrawal",
            "wallet": draft.wallet.name,
            "chain": draft.chain.name,
            "asset": intent.asset,
            "amount": str(intent.amount),
            "destination": str(intent.destination),
            "idempotency_key": draft.key,
            "body_hash": draft.body_hash,
            "payload": draft.payload,
            "digest": draft.digest,
        },
    )
    ledger.append(
        session,
        EventKind.POLICY_EVALUATED,
        "policy",
        {
            "request": request.id,
            "policy_digest": active.digest if active else None,
            "result": decision.to_dict(),
            "status": status.value,
        },
    )
    return request
