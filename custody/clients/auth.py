"""Verifying a client's per-call token, exactly as DESIGN.md fixes it.

A token is an EdDSA JWT binding one call: `sub` (client id), `uri` (path and query), `method`,
`bodyHash` (hex SHA-256 of the body bytes), `nonce` (never accepted twice per client), `iat` and
`exp` (at most 60 s apart). Every failure is the same 401 to the caller; the reason is specific so
that client developers can fix their code, but never reveals whether another client exists.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from custody.clients.service import parse_ed25519_public_pem
from custody.errors import Unauthorized
from custody.store.database import Database
from custody.store.models import Client, ClientNonce

REQUIRED_CLAIMS = ("sub", "uri", "method", "bodyHash", "nonce", "iat", "exp")
MAX_NONCE_LENGTH = 128


@dataclass(frozen=True)
class CallContext:
    """What the caller claims about this one HTTP call; the token must match it exactly."""

    method: str
    uri: str
    body: bytes


@dataclass(frozen=True)
class AuthenticatedClient:
    id: str
    name: str
    role: str = "trading"


@dataclass(frozen=True)
class TokenRules:
    max_lifetime_seconds: int
    clock_skew_seconds: int


def authenticate(
    db: Database,
    authorization: str | None,
    call: CallContext,
    rules: TokenRules,
    now: datetime | None = None,
) -> AuthenticatedClient:
    token = _bearer(authorization)
    unverified = _peek(token)
    with db.read() as session:
        client = session.get(Client, unverified["sub"])
        if client is None or client.disabled_at is not None:
            raise Unauthorized("unknown or disabled client")
        pem, name, role = client.public_key_pem, client.name, client.role
    claims = _verify_signature(token, pem)
    moment = now or datetime.now(UTC)
    _check_binding(claims, call)
    expires_at = _check_times(claims, rules, moment)
    with db.write() as session:
        _burn_nonce(session, client_id=claims["sub"], nonce=claims["nonce"], expires_at=expires_at)
    return AuthenticatedClient(id=claims["sub"], name=name, role=role)


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("missing Authorization header (Bearer <JWT>)")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must be 'Bearer <JWT>'")
    return token.strip()


def _peek(token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise Unauthorized("malformed token") from None
    if header.get("alg") != "EdDSA":
        raise Unauthorized("token must be signed with alg EdDSA (Ed25519)")
    if not isinstance(claims.get("sub"), str):
        raise Unauthorized("token has no sub claim")
    return claims


def _verify_signature(token: str, pem: str) -> dict[str, Any]:
    key = parse_ed25519_public_pem(pem.encode())
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["EdDSA"],
            options={
                "require": list(REQUIRED_CLAIMS),
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"token lacks the {exc.claim} claim") from None
    except jwt.PyJWTError:
        raise Unauthorized("token signature does not verify with the client's key") from None
    return claims


def _check_binding(claims: dict[str, Any], call: CallContext) -> None:
    if not isinstance(claims["method"], str) or claims["method"].upper() != call.method.upper():
        raise Unauthorized("token method does not match this call")
    if claims["uri"] != call.uri:
        raise Unauthorized("token uri does not match this call's path and query")
    expected = hashlib.sha256(call.body).hexdigest()
    body_hash = claims["bodyHash"]
    if not isinstance(body_hash, str) or not hmac.compare_digest(body_hash.lower(), expected):
        raise Unauthorized("token bodyHash does not match the SHA-256 of the body")
    nonce = claims["nonce"]
    if not isinstance(nonce, str) or not 8 <= len(nonce) <= MAX_NONCE_LENGTH:
        raise Unauthorized(f"token nonce must be a string of 8 to {MAX_NONCE_LENGTH} characters")


def _check_times(claims: dict[str, Any], rules: TokenRules, now: datetime) -> datetime:
    iat, exp = claims["iat"], claims["exp"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (iat, exp)):
        raise Unauthorized("token iat and exp must be integer seconds")
    if exp <= iat or exp - iat > rules.max_lifetime_seconds:
        raise Unauthorized(
            f"token exp must be after iat and at most {rules.max_lifetime_seconds} s later"
        )
    skew = rules.clock_skew_seconds
    stamp = int(now.timestamp())
    if iat > stamp + skew:
        raise Unauthorized("token iat is in the future (check the client's clock)")
    if exp < stamp - skew:
        raise Unauthorized("token has expired")
    return datetime.fromtimestamp(exp + skew, UTC)


def _burn_nonce(session: Session, *, client_id: str, nonce: str, expires_at: datetime) -> None:
    try:
        with session.begin_nested():
            session.add(ClientNonce(client_id=client_id, nonce=nonce, expires_at=expires_at))
    except IntegrityError:
        raise Unauthorized("token nonce was already used") from None


def purge_expired_nonces(session: Session, now: datetime) -> int:
    """Nonces only need remembering while their token could still be accepted."""
    result = session.execute(delete(ClientNonce).where(ClientNonce.expires_at < now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
