"""Dependencies of the API routes: the authenticated client, charged to its rate limit (and,
re-exported, the runtime and the raw body from custody.http)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from custody.clients.auth import AuthenticatedClient, CallContext, TokenRules, authenticate
from custody.errors import Forbidden, Unauthorized, ValidationFailed
from custody.http.deps import BodyDep, RuntimeDep, raw_body, runtime
from custody.http.ratelimit import RateLimits, RateLimitsDep
from custody.intake.jsonbody import parse_object
from custody.runtime import Runtime

APPROVAL_FIELDS = frozenset({"approver", "decision", "signature"})


def approval_fields(body: bytes) -> dict[str, Any]:
    """The body of a device-key decision (on a request, a policy proposal, a lift, a ceremony):
    strict JSON with those three fields and no others (each endpoint checks their values)."""
    data = parse_object(body)
    unknown = set(data) - APPROVAL_FIELDS
    if unknown:
        raise ValidationFailed(f"unknown fields: {', '.join(sorted(unknown))}")
    return data


def call_uri(request: Request) -> str:
    """Path and query exactly as the client sent them: that is what its token signed."""
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string", b"")
    uri = raw_path.decode("latin-1")
    return f"{uri}?{query.decode('latin-1')}" if query else uri


def idempotency_key(request: Request) -> str | None:
    """The one `Idempotency-Key` header; two could be read differently by two layers."""
    values = request.headers.getlist("idempotency-key")
    if len(values) > 1:
        raise Unauthorized("send at most one Idempotency-Key header")
    return values[0] if values else None


def _authenticate(
    request: Request,
    rt: Runtime,
    limits: RateLimits,
    body: bytes,
    *,
    key_required: bool,
    burn: bool = True,
) -> AuthenticatedClient:
    settings = rt.settings
    rules = TokenRules(settings.jwt_max_lifetime_seconds, settings.jwt_clock_skew_seconds)
    call = CallContext(
        method=request.method,
        uri=call_uri(request),
        body=body,
        idempotency_key=idempotency_key(request),
        idempotency_required=key_required,
    )
    return authenticate(
        rt.db,
        request.headers.get("authorization"),
        call,
        rules,
        admit=lambda caller: limits.admit_client(caller.id),
        burn=burn,
    )


# Only declares the scheme in the OpenAPI document: `authenticate` reads the header itself and
# answers every failure with its own 401 problem, so this one never refuses anything.
_TOKEN_SCHEME = HTTPBearer(
    scheme_name="clientToken",
    bearerFormat="JWT",
    description="EdDSA (Ed25519) JWT signed with the client's key; claims sub, uri, method, "
    "bodyHash, nonce, iat, exp (at most 60 s later), and idempotencyKey when that header is sent",
    auto_error=False,
)


def client(
    request: Request,
    rt: Annotated[Runtime, Depends(runtime)],
    limits: RateLimitsDep,
    body: Annotated[bytes, Depends(raw_body)],
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(_TOKEN_SCHEME)],
) -> AuthenticatedClient:
    return _authenticate(request, rt, limits, body, key_required=False)


def creating_client(
    request: Request,
    rt: Annotated[Runtime, Depends(runtime)],
    limits: RateLimitsDep,
    body: Annotated[bytes, Depends(raw_body)],
    _scheme: Annotated[HTTPAuthorizationCredentials | None, Security(_TOKEN_SCHEME)],
) -> AuthenticatedClient:
    """`POST /v1/requests`: the Idempotency-Key header and its signed claim are both required.
    The nonce comes back unburnt: intake burns it in the transaction that stores the request
    (one fsynced commit per create, not two), or alone when it stores nothing."""
    caller = _authenticate(request, rt, limits, body, key_required=True, burn=False)
    if caller.role != "trading" and caller.unburnt_nonce is not None:
        caller.unburnt_nonce.burn_alone(rt.db)  # a refused call's nonce is spent all the same
    return _trading(caller)


def _trading(caller: AuthenticatedClient) -> AuthenticatedClient:
    if caller.role != "trading":
        raise Forbidden(f"client role {caller.role!r} may not use request endpoints")
    return caller


# The role checks are `async`: a comparison needs no worker thread (custody.http.deps).
async def trading_client(
    caller: Annotated[AuthenticatedClient, Depends(client)],
) -> AuthenticatedClient:
    return _trading(caller)


async def auditor_client(
    caller: Annotated[AuthenticatedClient, Depends(client)],
) -> AuthenticatedClient:
    if caller.role != "auditor":
        raise Forbidden("only auditor clients may read ledger entries (they name every client)")
    return caller


async def operator_client(
    caller: Annotated[AuthenticatedClient, Depends(client)],
) -> AuthenticatedClient:
    if caller.role != "operator":
        raise Forbidden("only operator clients may freeze signing or list freezes")
    return caller


ClientDep = Annotated[AuthenticatedClient, Depends(trading_client)]
CreatingClientDep = Annotated[AuthenticatedClient, Depends(creating_client)]
AnyClientDep = Annotated[AuthenticatedClient, Depends(client)]
AuditorDep = Annotated[AuthenticatedClient, Depends(auditor_client)]
OperatorDep = Annotated[AuthenticatedClient, Depends(operator_client)]

__all__ = ["BodyDep", "RuntimeDep", "raw_body", "runtime"]
