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

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from custody.clients.auth import verify_stored_call
from custody.clients.service import INTERNAL_ROLE
from custody.clients.tokens import MAKER_CLAIM
from custody.errors import CustodyError
from custody.intake.decoders import decode
from custody.intake.evmfill import EvmFill
from custody.intake.jsonbody import parse_object
from custody.policy.facts import RequestFacts
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
    return Evidence(
        draft.payload, draft.digest, draft.wallet.id, draft.facts(client.name), draft.replaces
    )


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
