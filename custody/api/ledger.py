"""`/v1/ledger`: what auditors (and clients) need to verify the ledger with their own tools."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from custody.api.deps import AnyClientDep, AuditorDep, RuntimeDep
from custody.errors import NotFound
from custody.http.problems import problem_responses
from custody.ledger import proofs
from custody.ledger.checkpoints import latest_checkpoint, runtime_identity
from custody.ledger.schemas import ConsistencyProof, InclusionProof, LedgerEntries, LedgerKey

router = APIRouter(
    prefix="/v1/ledger",
    tags=["ledger"],
    responses=problem_responses(401, 403, 422, 429, 500, 503),
)


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    summary="The newest signed checkpoint (C2SP signed note, text/plain)",
    responses=problem_responses(404),
)
def checkpoint(rt: RuntimeDep, _client: AnyClientDep) -> PlainTextResponse:
    with rt.db.read() as session:
        latest = latest_checkpoint(session)
        if latest is None:
            raise NotFound("no checkpoint yet; one is signed shortly after entries arrive")
        return PlainTextResponse(latest.note, media_type="text/plain; charset=utf-8")


@router.get(
    "/entries",
    summary="Entries from `start`, each with its exact canonical form "
    "(auditor clients only: entries name every client's requests)",
)
def entries(
    rt: RuntimeDep,
    _client: AuditorDep,
    start: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=proofs.MAX_ENTRIES_PAGE)] = 100,
) -> LedgerEntries:
    with rt.db.read() as session:
        return proofs.entries(session, start, limit)


@router.get("/proofs/inclusion", summary="RFC 9162 inclusion proof of entry `index`")
def inclusion(
    rt: RuntimeDep,
    _client: AnyClientDep,
    index: Annotated[int, Query(ge=0)],
    tree_size: Annotated[int, Query(ge=1)],
) -> InclusionProof:
    with rt.db.read() as session:
        return proofs.inclusion(session, index, tree_size)


@router.get("/proofs/consistency", summary="RFC 9162 consistency proof between two sizes")
def consistency(
    rt: RuntimeDep,
    _client: AnyClientDep,
    from_size: Annotated[int, Query(alias="from", ge=1)],
    to_size: Annotated[int, Query(alias="to", ge=1)],
) -> ConsistencyProof:
    with rt.db.read() as session:
        return proofs.consistency(session, from_size, to_size)


@router.get("/public-key", summary="The ledger key as a note verifier key")
def public_key(rt: RuntimeDep, _client: AnyClientDep) -> LedgerKey:
    ident = runtime_identity(rt)
    return LedgerKey(
        verifier_key=ident.verifier_key,
        origin=ident.origin,
        algorithm="ed25519",
        public_key=ident.public_key.hex(),
    )
