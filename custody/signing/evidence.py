"""What the signer believes: the client's signed bytes, not the request's row (issue 9).

A database insider can rewrite any column of `requests`: status, payload, digest, facts. So the
signer takes none of them on trust. It re-verifies the client's token over the exact body it
stored, decodes that body again with the intake decoders, and hands on the payload, digest and
facts this yields; the row only has to agree with them.

Approvals are verified in the same spirit, against the digest derived here
(custody.approvals.evidence). Not yet covered (see docs/security.md): client public keys are read
from the database (sealing configuration under an installation key or the governance quorum comes
next), and the approver app's internal client has no token of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from custody.clients.auth import verify_stored_call
from custody.clients.service import INTERNAL_ROLE
from custody.errors import CustodyError
from custody.intake.decoders import decode
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
    facts: RequestFacts | None
    """None for requests without a client token (internal client): facts come from the row."""


def rederive(session: Session, request: Request) -> Evidence:
    """The payload, digest and facts the client's signed body yields now; raises
    EvidenceRefused, with what failed, when the evidence is missing or does not hold."""
    client = session.get(Client, request.client_id)
    if client is None:
        raise EvidenceRefused("the request names a client that does not exist")
    if client.role == INTERNAL_ROLE:
        # The approver app's maker requests: no client token exists to check (a known gap).
        return Evidence(json.loads(request.payload), request.digest, request.wallet_id, None)
    if request.client_body is None or request.client_token is None:
        raise EvidenceRefused(
            "no client evidence is stored (the signed token and exact body): the client must "
            "submit the request again"
        )
    try:
        verify_stored_call(
            client.public_key_pem,
            request.client_token,
            client_id=client.id,
            body=request.client_body,
            idempotency_key=request.idempotency_key,
        )
        draft = decode(session, parse_object(request.client_body))
    except CustodyError as exc:
        raise EvidenceRefused(f"the client's signed body does not hold: {exc.message}") from None
    return Evidence(draft.payload, draft.digest, draft.wallet.id, draft.facts(client.name))
