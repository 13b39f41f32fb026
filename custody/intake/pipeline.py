"""Intake, top to bottom: from a client's body to a stored request with its policy decision.

Intake owns its transactions, because where the line between them falls is the point: the
CPU-heavy decoding (strict JSON, calldata, EIP-712 hashing) runs in a read transaction, so no
write lock is held while it works (on SQLite the write transaction holds the database's only
write lock, and every other writer would wait for the decode). The write transaction then
checks again, cheaply, what the decode relied on, and decides and stores the request.

Nothing is signed here: allowed requests become `approved` and the signer worker takes them (so
the HTTP handler never holds the HSM).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from custody import tracing
from custody.approvals.deadlines import approval_deadline
from custody.chains.bitcoin.psbt import spent_outpoints
from custody.chains.evm.fees import payload_fees
from custody.chains.evm.rpc import DEFAULT_TIMEOUT_SECONDS
from custody.clients.auth import AuthenticatedClient, CallNonce
from custody.decisions.service import decide
from custody.errors import Conflict, CustodyError
from custody.freezes import breakers
from custody.intake import coin_replacement, replacement
from custody.intake.completion import Quote, fee_cap_problem, next_nonce, quote, with_nonce
from custody.intake.decoders import decode_with
from custody.intake.draft import Draft
from custody.intake.errors import IdempotencyConflict, InvalidBody, NonceInUse, OutpointInUse
from custody.intake.evmfill import EvmFill, Incomplete, TxShape
from custody.intake.jsonbody import parse_object
from custody.intake.lookups import Lookups, Read, still_holds
from custody.keys.repository import key_by_id
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.ledger.service import rfc3339
from custody.policy import Decision, RequireApprovals
from custody.policy_versions.service import ActivePolicy
from custody.requests import lifecycle
from custody.requests import repository as requests
from custody.requests.states import RequestStatus
from custody.store.base import utcnow
from custody.store.database import Database, DatabaseUnavailable
from custody.store.models import Request
from custody.views.requests import request_view
from custody.wallets.errors import WalletRetired

MAX_IDEMPOTENCY_KEY = 200
# Decodes of one call at most: the catalog changed under each one (an operator's change, never a
# client's), or a concurrent call won a unique constraint (its key or nonce) and the next round
# explains it (a replay, or the nonce's holder).
MAX_ROUNDS = 3


@dataclass(frozen=True)
class Submission:
    view: dict[str, Any]
    replayed: bool


@dataclass(frozen=True)
class _Call:
    """What every step knows about the call: who sent what, under which key."""

    client: AuthenticatedClient
    key: str
    body: bytes
    body_hash: str
    requested_by_approver: str | None
    http_request_id: str | None


@dataclass(frozen=True)
class _Decoded:
    draft: Draft | None
    """None when a connected chain's node must fill fields first (`shape` says which)."""
    reads: list[Read]
    """The catalog rows the decode read, each with its answer (custody.intake.lookups)."""
    data: dict[str, Any]
    shape: TxShape | None = None
    quote: Quote | None = None


class _CatalogMoved(Exception):
    """A wallet, chain, asset or venue the decode read changed before the write: decode again."""


@dataclass
class _NonceDuty:
    """The call's token nonce when its authentication left it unburnt (custody.clients.auth):
    burnt in the transaction that stores the request, so a create commits once; alone when
    the call stores nothing (a replay answered from the stored request, a refusal). Until it
    is burnt, the call is not authenticated: a second use of the nonce is refused."""

    nonce: CallNonce | None
    burnt: bool = False

    def in_transaction(self, session: Session) -> None:
        if self.nonce is not None and not self.burnt:
            self.nonce.burn(session)

    def committed(self) -> None:
        self.burnt = True

    def alone(self, db: Database) -> None:
        if self.nonce is not None and not self.burnt:
            self.nonce.burn_alone(db)
            self.burnt = True


def submit(
    db: Database,
    *,
    client: AuthenticatedClient,
    idempotency_key: str | None,
    body: bytes,
    max_fee_wei: int,
    requested_by_approver: str | None = None,
    authorise: Callable[[Session], None] | None = None,
    node_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    http_request_id: str | None = None,
) -> Submission:
    """`requested_by_approver`: the person who started it in the approver app (the maker);
    `authorise`: the caller's check that must hold in the transaction that stores the request
    (the maker's permission), run first in it; `http_request_id`: the X-Request-Id of the
    HTTP call (custody.callid), recorded with the request (a replay keeps the first call's).

    A client whose nonce is still unburnt (`client.unburnt_nonce`) has it burnt here, whatever
    the outcome: with the request when one is stored, alone otherwise (Unauthorized, before
    any other answer, when it was used already)."""
    duty = _NonceDuty(client.unburnt_nonce)
    try:
        key = _check_idempotency_key(idempotency_key)
        call = _Call(
            client,
            key,
            body,
            hashlib.sha256(body).hexdigest(),
            requested_by_approver,
            http_request_id,
        )
        traced = {"custody.client": client.name, "custody.http_request_id": http_request_id}
        with tracing.span("intake", traced) as span:
            submission = _submit(
                db,
                call,
                duty=duty,
                max_fee_wei=max_fee_wei,
                authorise=authorise,
                node_timeout=node_timeout,
            )
            span.set(
                {
                    "custody.request_id": submission.view.get("id"),
                    "custody.wallet": submission.view.get("wallet"),
                    "custody.status": submission.view.get("status"),
                    "custody.replayed": submission.replayed,
                }
            )
            return submission
    except Exception:
        # Refused or failed: the nonce is spent all the same, as it was when authentication
        # burnt it up front. A reused one turns the answer into its 401.
        with contextlib.suppress(DatabaseUnavailable):
            duty.alone(db)
        raise


def _submit(
    db: Database,
    call: _Call,
    *,
    duty: _NonceDuty,
    max_fee_wei: int,
    authorise: Callable[[Session], None] | None,
    node_timeout: float,
) -> Submission:
    for _ in range(MAX_ROUNDS):
        with db.read() as session:
            # (1) idempotency: the same key and body answer exactly as the first time
            earlier = requests.by_idempotency_key(session, call.client.id, call.key)
            replay = None if earlier is None else _replay(earlier, call.key, call.body_hash)
            if replay is None:
                # (2) decode, holding no write lock: strict JSON into a draft whose payload
                #     and digest can no longer change, and the catalog rows it was decoded
                #     against
                with tracing.span("intake.decode") as span:
                    decoded = _decode(session, call.body, max_fee_wei)
                    span.set(_described(decoded))
        if replay is not None:
            duty.alone(db)  # nothing is stored: the nonce commits alone
            return replay
        if decoded.shape is not None:
            # (2b) a connected chain: ask its node for gas and fees, holding no lock at all
            with tracing.span("intake.node_quote", {"custody.chain": decoded.shape.chain.name}):
                decoded = replace(decoded, quote=quote(decoded.shape, timeout=node_timeout))
        try:
            # the write transaction, from its start to its commit (the ledger lock's wait too)
            with tracing.span("intake.store"), db.write() as session:
                duty.in_transaction(session)
                if authorise is not None:
                    authorise(session)
                stored = _decide_and_store(session, call, decoded, max_fee_wei)
        except (_CatalogMoved, IntegrityError):
            continue
        duty.committed()
        return stored
    raise Conflict("concurrent changes kept conflicting with this request; retry")


def _described(decoded: _Decoded) -> tracing.Attributes:
    """What a decode's span says: the request's type and wallet (its chain's node must fill
    the rest first when there is no draft yet)."""
    if decoded.draft is not None:
        return {
            "custody.request_type": decoded.draft.type,
            "custody.wallet": decoded.draft.wallet.name,
        }
    assert decoded.shape is not None
    return {"custody.wallet": decoded.shape.wallet.name, "custody.needs_node": True}


def _decode(session: Session, body: bytes, max_fee_wei: int) -> _Decoded:
    lookups = Lookups(session)
    data = parse_object(body)
    try:
        draft = decode_with(lookups, data)
    except Incomplete as need:
        return _Decoded(None, lookups.reads, data, shape=need.shape)
    check_fee_caps(draft, max_fee_wei)
    return _Decoded(draft, lookups.reads, data)


def check_fee_caps(draft: Draft, max_fee_wei: int) -> None:
    """The installation's cap on a transaction's whole fee, and its chain's on the fee per gas
    (of the transaction that pays gas: a Safe request's executor's)."""
    fees = payload_fees(draft.payload)
    problem = fee_cap_problem(
        max_fee=draft.max_fee,
        per_gas=None if fees is None else fees[1],
        chain=draft.chain,
        max_fee_wei=max_fee_wei,
    )
    if problem is not None:
        raise InvalidBody(problem)


def _complete(
    session: Session, decoded: _Decoded, max_fee_wei: int, replaced: Request | None
) -> tuple[Draft, EvmFill | None]:
    """The draft, decoded again with the node's fill and the nonce chosen now, under the lock
    (a replacement's: the nonce of the request it replaces, and fees a node accepts instead)."""
    if decoded.draft is not None:
        return decoded.draft, None
    assert decoded.shape is not None
    assert decoded.quote is not None
    nonce = executor_nonce = None
    if decoded.quote.pending_nonce is not None:
        nonce = next_nonce(session, decoded.shape.wallet.id, decoded.quote.pending_nonce)
    if decoded.shape.safe is not None and decoded.quote.executor_pending is not None:
        # a Safe's execTransaction takes the executor's next free nonce, under the same lock
        executor = decoded.shape.safe.executor
        executor_nonce = next_nonce(session, executor.id, decoded.quote.executor_pending)
    fill = with_nonce(decoded.quote, nonce, executor_nonce)
    if replaced is not None:
        fill = replacement.bumped(fill, replaced)
        if decoded.shape.given.nonce is not None:
            fill = dataclasses.replace(fill, nonce=None)  # the body's own: `check` judges it
    draft = decode_with(Lookups(session), decoded.data, fill)
    check_fee_caps(draft, max_fee_wei)
    return draft, fill


def _replaced(session: Session, client_id: str, decoded: _Decoded) -> Request | None:
    """The request the body says this one replaces, if any and if it may be replaced now."""
    request_id = decoded.draft.replaces if decoded.draft else decoded.data.get("replaces")
    if request_id is None:
        return None
    if decoded.draft is not None and decoded.draft.spends:
        return coin_replacement.replaced_request(
            session, client_id=client_id, request_id=str(request_id), draft=decoded.draft
        )
    if decoded.draft is not None:
        wallet, chain = decoded.draft.wallet, decoded.draft.chain
    else:
        assert decoded.shape is not None
        wallet, chain = decoded.shape.wallet, decoded.shape.chain
    return replacement.replaced_request(
        session, client_id=client_id, request_id=str(request_id), wallet=wallet, chain=chain
    )


def _decide_and_store(
    session: Session, call: _Call, decoded: _Decoded, max_fee_wei: int
) -> Submission:
    """Steps (3) to (7), in the one write transaction."""
    client, key = call.client, call.key

    # (3) re-check cheaply what (1) and (2) relied on: a concurrent call with this key may have
    #     committed since, and the catalog rows the decode read must be unchanged (a few
    #     indexed reads; the draft's wallet and chain are equal to the rows read now)
    earlier = requests.by_idempotency_key(session, client.id, key)
    if earlier is not None:
        return _replay(earlier, key, call.body_hash)
    if not still_holds(session, decoded.reads):
        raise _CatalogMoved

    # (4) from here on, requests are decided one at a time: the ledger head lock serialises
    #     this transaction with every other writer, so limits see all committed requests
    with tracing.span("intake.ledger_lock"):
        ledger.lock(session)

    # (4b) on a connected chain, the nonce the body left out: the wallet's next free one, chosen
    #      under the same lock, so concurrent requests get consecutive nonces (a replacement
    #      of a stuck transaction: that transaction's nonce, custody.intake.replacement)
    replaced = _replaced(session, client.id, decoded)
    draft, fill = _complete(session, decoded, max_fee_wei, replaced)
    _require_not_retired(session, draft)

    # (5) one live request per wallet and nonce (the database enforces it too), but for the
    #     replacement of the nonce's newest signature
    if replaced is not None and draft.spends:
        coin_replacement.check(draft, replaced)
    elif replaced is not None:
        replacement.check(draft, replaced)
    elif draft.nonce is not None:
        holder = requests.live_for_nonce(session, draft.wallet.id, draft.nonce)
        if holder is not None and holder.client_id == client.id and holder.idempotency_key == key:
            return _replay(holder, key, call.body_hash)  # a concurrent call with this key won
        if holder is not None:
            shown = holder.id if holder.client_id == client.id else "(another client's)"
            raise NonceInUse(
                f"nonce {draft.nonce} of wallet {draft.wallet.name} is already taken by request "
                f"{shown} ({holder.status})"
            )

    # (5b) one live request per Bitcoin coin: two signed PSBTs spending one outpoint would let
    #      whichever is broadcast first decide what was approved (but for a replacement, which
    #      spends its line's coins again by name: custody.intake.coin_replacement)
    if draft.spends:
        line = coin_replacement.line_of(session, replaced) if replaced is not None else set()
        replay = _check_coins(session, call, draft, line)
        if replay is not None:
            return replay

    # (6) evaluate the active policy and its limits; no policy means deny
    facts = draft.facts(client.name)
    with tracing.span("intake.policy", {"custody.wallet": draft.wallet.name}) as span:
        active, decision = decide(session, facts, exclude_request=None)
        span.set(
            {
                "custody.decision": decision.decision,
                "custody.policy_digest": active.digest if active else None,
            }
        )

    # (7) store the request and its ledger entries in this one transaction
    request = _store(
        session,
        client,
        draft,
        key=key,
        body=call.body,
        body_hash=call.body_hash,
        decision=decision,
        active=active,
        requested_by_approver=call.requested_by_approver,
        http_request_id=call.http_request_id,
        fill=fill,
        replaced=replaced,
    )
    request.facts = json.dumps(facts.to_dict(), sort_keys=True)
    if isinstance(decision, RequireApprovals):
        request.expires_at = approval_deadline(decision, request.created_at)
    view = request_view(request, draft.wallet.name)
    request.first_response = json.dumps(view, sort_keys=True)
    session.flush()

    # (8) circuit breakers: a denial or a spike may freeze signing, committed with the request
    breakers.after_intake(
        session,
        request=request,
        client=client.name,
        wallet=draft.wallet.name,
        decision=decision,
        active=active,
    )
    return Submission(view=view, replayed=False)


def _check_coins(
    session: Session, call: _Call, draft: Draft, replaced_line: set[str]
) -> Submission | None:
    for holder in requests.live_of_type(session, draft.wallet.id, draft.type):
        if holder.id in replaced_line:
            continue
        if holder.client_id == call.client.id and holder.idempotency_key == call.key:
            return _replay(holder, call.key, call.body_hash)  # a concurrent call with this key
        try:
            taken = draft.spends & spent_outpoints(json.loads(holder.payload)["psbt"])
        except (ValueError, KeyError, TypeError, CustodyError):
            continue  # a row edited behind custody's back: the signer fails that request
        if taken:
            shown = holder.id if holder.client_id == call.client.id else "(another client's)"
            raise OutpointInUse(
                f"coin {sorted(taken)[0]} of wallet {draft.wallet.name} is already spent by "
                f"request {shown} ({holder.status})"
            )
    return None


def _require_not_retired(session: Session, draft: Draft) -> None:
    """A retired key's wallets take no request: `custody keys retire` marks the key under the
    ledger lock held here, so no request slips in between its checks and its commit."""
    key = key_by_id(session, draft.wallet.key_id)
    if key.retired_at is not None:
        raise WalletRetired(
            f"wallet {draft.wallet.name!r} signs nothing more: its key {key.label!r} was "
            f"retired at {rfc3339(key.retired_at)} (custody keys retire)"
        )


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
    http_request_id: str | None,
    fill: EvmFill | None,
    replaced: Request | None,
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
        executor_wallet_id=draft.executor_wallet_id,
        executor_nonce=draft.executor_nonce,
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
        http_request_id=http_request_id,
        evm_fill=fill.to_json() if fill is not None else None,
        replaces=replaced.id if replaced is not None else None,
        nonce_generation=replaced.nonce_generation + 1 if replaced is not None else 0,
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
    if fill is not None:
        # What custody chose on the node's word, beside what the client sent (body_hash).
        created["filled"] = json.loads(fill.to_json())
    if replaced is not None:
        created["replaces"] = replaced.id
    if http_request_id is not None:
        # Ties the entry to the call's log lines and answer; only when there was an HTTP call.
        created["http_request_id"] = http_request_id
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
