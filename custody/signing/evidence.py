"""What the signer believes: the client's signed bytes, not the request's row (issue 9).

A database insider can rewrite any column of `requests`: status, payload, digest, facts. So the
signer takes none of them on trust. It re-verifies the client's token over the exact body it
stored, decodes that body again with the intake decoders, and hands on the payload, digest and
facts this yields; the row only has to agree with them.

The client's public key comes from a row the configuration seal vouches for (custody.seals,
checked before any claim). Requests people start in the approver app carry a token the app
signed with its own HSM key, naming the maker (custody.clients.tokens).
Approvals are verified in the same spirit, against the digest derived here
(custody.approvals.evidence).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from custody.clients.auth import verify_stored_call
from custody.clients.service import INTERNAL_ROLE, previous_keys
from custody.clients.tokens import MAKER_CLAIM
from custody.errors import CustodyError
from custody.intake.decoders import decode
from custody.intake.evmfill import EvmFill
from custody.intake.jsonbody import parse_object
from custody.limits.usage import CountedEvidenceRefused, Stored, counted_since
from custody.policy.facts import RequestFacts
from custody.policy_versions.service import active_policy
from custody.store.base import utcnow
from custody.store.models import Client, Request


class EvidenceRefused(CustodyError):
    status = 500
    title = "Request evidence refused"
    slug = "evidence-refused"


@dataclass(frozen=True)
class Evidence:
    payload: dict[str, Any]
    digest: str
    wallet_id: int
    """The wallet whose key signs: the one the client named, not the row's `wallet_id`."""
    facts: RequestFacts
    replaces: str | None = None
    """The request whose nonce the client's body says this one signs again, if any."""


def rederive(session: Session, request: Request) -> Evidence:
    """The payload, digest and facts the client's signed body yields now; raises
    EvidenceRefused, with what failed, when the evidence is missing or does not hold."""
    client = session.get(Client, request.client_id)
    if client is None:
        raise EvidenceRefused("the request names a client that does not exist")
    if request.client_body is None or request.client_token is None:
        raise EvidenceRefused(
            "no client evidence is stored (the signed token and exact body): the client must "
            "submit the request again"
        )
    try:
        claims = verify_stored_call(
            client.public_key_pem,
            request.client_token,
            client_id=client.id,
            body=request.client_body,
            idempotency_key=request.idempotency_key,
        )
        # On a connected chain, with what custody filled in when the body left it out (nonce,
        # gas, fees): approvals name the digest those fields give, so a changed fill shows
        # as a digest the approvers never saw.
        draft = decode(
            session, parse_object(request.client_body), EvmFill.from_json(request.evm_fill)
        )
    except CustodyError as exc:
        raise EvidenceRefused(f"the client's signed body does not hold: {exc.message}") from None
    _check_maker(client, request, claims)
    _check_replacement(session, request, draft.replaces, draft.nonce)
    facts = draft.facts(client.name)
    # What the claim just verified, later claims count (custody.limits) without verifying again.
    _remember(_stored_of(request), _Believed(facts, client.id, draft.wallet.id))
    return Evidence(draft.payload, draft.digest, draft.wallet.id, facts, draft.replaces)


def _check_replacement(
    session: Session, request: Request, replaces: str | None, nonce: int | None
) -> None:
    """A nonce's second signature only when the client's signed body names the request whose
    nonce it takes (invariant 4): the row's generation alone proves nothing."""
    if replaces is None:
        if request.nonce_generation != 0 or request.replaces is not None:
            raise EvidenceRefused(
                "the request would sign a nonce again, but its client named no request to replace"
            )
        return
    replaced = session.get(Request, replaces)
    if (
        replaced is None
        or replaced.client_id != request.client_id
        or replaced.wallet_id != request.wallet_id
        or replaced.evm_nonce != nonce
        or request.replaces != replaces
        or request.nonce_generation != replaced.nonce_generation + 1
    ):
        raise EvidenceRefused(
            f"the request replaces {replaces}, which is not its client's request holding "
            f"nonce {nonce} one generation before it"
        )


def _check_maker(client: Client, request: Request, claims: dict[str, Any]) -> None:
    """Who started a request in the approver app is signed into its token: a row naming someone
    else would let the maker check their own request (invariant 6)."""
    maker = claims.get(MAKER_CLAIM)
    if client.role == INTERNAL_ROLE:
        if not isinstance(maker, str) or maker != request.requested_by_approver:
            raise EvidenceRefused("the request's maker is not the one the approver app signed")
    elif maker is not None or request.requested_by_approver is not None:
        raise EvidenceRefused("only the approver app's requests name a maker")


# What other requests' evidence yielded, for the limits the signer re-checks: verifying a token
# and decoding a body again costs about a millisecond, and a busy limit window holds hundreds of
# requests that every claim counts. Keyed by the request and the hash of everything its
# verification read from its row, so an edited row is verified afresh; the client's key is
# not in the key: a verification that held under a sealed key stays good evidence after a
# sealed rotation, and an edited key row is the configuration seal's to catch (the signer seals
# the clients and wallets of the counted requests too). Successes only: a failure stops signing.
_believed: dict[tuple[str, bytes], _Believed] = {}
_BELIEVED_LIMIT = 100_000
_believed_lock = threading.Lock()


@dataclass(frozen=True)
class _Believed:
    facts: RequestFacts
    client_id: str
    wallet_id: int


@dataclass
class CountedEvidence:
    """custody.limits.usage.Believe for one claim: the facts each counted request's own client
    evidence yields (the token verified with its client's key, the body decoded again with its
    fill, as `rederive` does), and which clients and wallets that relied on."""

    client_ids: set[str] = field(default_factory=set)
    wallet_ids: set[int] = field(default_factory=set)

    def __call__(self, session: Session, stored: Stored) -> RequestFacts:
        key = (stored.id, _evidence_hash(stored))
        with _believed_lock:
            believed = _believed.get(key)
        if believed is None:
            believed = _believe(session, stored)
            _remember(stored, believed)
        self.client_ids.add(believed.client_id)
        self.wallet_ids.add(believed.wallet_id)
        return believed.facts


def warm(session: Session) -> int:
    """Verify, outside the ledger lock, the requests the active policy's limits would count, so
    that a signer's first claim does not verify hundreds of them while every writer waits.
    Failures are left for the claim to find (and freeze on); returns how many verified."""
    active = active_policy(session)
    limits = active.policy.compiled.limits if active is not None else ()
    if not limits:
        return 0
    since = utcnow() - timedelta(seconds=max(c.limit.window for c in limits))
    believe, verified = CountedEvidence(), 0
    for stored in counted_since(session, since):
        try:
            believe(session, stored)
        except CountedEvidenceRefused:
            continue
        verified += 1
    return verified


def _remember(stored: Stored, believed: _Believed) -> None:
    with _believed_lock:
        if len(_believed) >= _BELIEVED_LIMIT:
            _believed.clear()
        _believed[stored.id, _evidence_hash(stored)] = believed


def _stored_of(request: Request) -> Stored:
    return Stored(
        request.id,
        request.client_id,
        request.idempotency_key,
        request.client_body,
        request.client_token,
        request.evm_fill,
    )


def _evidence_hash(stored: Stored) -> bytes:
    digest = hashlib.sha256()
    for part in (
        stored.client_id.encode(),
        stored.idempotency_key.encode(),
        stored.client_body,
        None if stored.client_token is None else stored.client_token.encode(),
        None if stored.evm_fill is None else stored.evm_fill.encode(),
    ):
        # length-prefixed, and None apart from empty: no two rows hash alike by shifting bytes
        digest.update(b"-" if part is None else len(part).to_bytes(8, "big") + part)
    return digest.digest()


def _believe(session: Session, stored: Stored) -> _Believed:
    client = session.get(Client, stored.client_id)
    if client is None:
        raise CountedEvidenceRefused(stored.id, "it names a client that does not exist")
    if stored.client_body is None or stored.client_token is None:
        # Requests stored before migration 0008, or an insider's deletion: what they moved
        # cannot be known, so it cannot be counted (never as zero).
        raise CountedEvidenceRefused(
            stored.id, "no client evidence is stored (the signed token and exact body)"
        )
    try:
        _verify_with_any_key(session, client, stored)
        fill = EvmFill.from_json(stored.evm_fill)
        draft = decode(session, parse_object(stored.client_body), fill)
    except CustodyError as exc:
        raise CountedEvidenceRefused(
            stored.id, f"the client's signed body does not hold: {exc.message}"
        ) from None
    except Exception as exc:  # any decoding failure must fail closed, as for the claim itself
        raise CountedEvidenceRefused(stored.id, f"its body no longer decodes: {exc}") from None
    return _Believed(draft.facts(client.name), client.id, draft.wallet.id)


def _verify_with_any_key(session: Session, client: Client, stored: Stored) -> None:
    """The client's current key, or one it had before a rotation (its ledger entries say which):
    a request counted by a limit was signed with the key of its day, and a signer started after
    `clients rotate-key` must still be able to count it."""
    token, body = stored.client_token, stored.client_body
    assert token is not None
    assert body is not None

    def verify(key: str) -> None:
        verify_stored_call(
            key, token, client_id=client.id, body=body, idempotency_key=stored.idempotency_key
        )

    try:
        verify(client.public_key_pem)
        return
    except CustodyError as refused:
        first = refused
    for key in previous_keys(session, client.id):
        try:
            verify(key)
            return
        except CustodyError:
            continue
    raise first
