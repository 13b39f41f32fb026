"""Verifying a client's per-call token, exactly as DESIGN.md fixes it.

A token is an EdDSA JWT binding one call: `sub` (client id), `uri` (path and query), `method`,
`bodyHash` (hex SHA-256 of the body bytes), `nonce` (never accepted twice per client), `iat` and
`exp` (at most 60 s apart), and `idempotencyKey` (the `Idempotency-Key` header's value, on every
call that sends that header). Every failure is the same 401 to the caller; the reason is specific
so that client developers can fix their code, but never reveals whether a client exists: an
unknown `sub` is checked against a decoy key and fails exactly like a known client's bad signature.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from custody.clients.service import parse_ed25519_public_pem
from custody.errors import Unauthorized
from custody.store.database import Database
from custody.store.models import Client, ClientNonce

CREATE_PATH = "/v1/requests"
REQUIRED_CLAIMS = ("sub", "uri", "method", "bodyHash", "nonce", "iat", "exp")
IDEMPOTENCY_CLAIM = "idempotencyKey"
MAX_NONCE_LENGTH = 128
BAD_SIGNATURE = "token signature does not verify with the key of the client it names"
# Purging may run in a worker on another host whose clock is ahead of this one; keeping a burnt
# nonce a few minutes past its token's last valid instant costs a few rows and absorbs that.
NONCE_KEPT_AFTER_EXPIRY = timedelta(minutes=5)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# The private half is discarded at once: no token can ever verify with this key.
_DECOY_PEM = (
    Ed25519PrivateKey.generate()
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


@dataclass(frozen=True)
class CallContext:
    """What the caller claims about this one HTTP call; the token must match it exactly.

    `idempotency_key` is the `Idempotency-Key` header as sent (None when absent);
    `idempotency_required` is set by routes that need one (`POST /v1/requests`).
    """

    method: str
    uri: str
    body: bytes
    idempotency_key: str | None
    idempotency_required: bool


@dataclass(frozen=True)
class CallNonce:
    """A verified call's nonce, to be burnt by the caller in the transaction that acts on the
    call (`authenticate(..., burn=False)`): one commit per call instead of two."""

    client_id: str
    value: str
    kept_until: datetime

    def burn(self, session: Session) -> None:
        """Inside the caller's transaction; Unauthorized when it was used already (and then
        the transaction must not commit what the call asked for)."""
        _burn_nonce(session, client_id=self.client_id, nonce=self.value, until=self.kept_until)

    def burn_alone(self, db: Database) -> None:
        """In a transaction of its own: for a call that ends writing nothing else (refused,
        invalid, or answered from what is stored)."""
        with db.write() as session:
            self.burn(session)


@dataclass(frozen=True)
class AuthenticatedClient:
    id: str
    name: str
    role: str = "trading"
    # The token this call was authenticated with: intake keeps it as the request's evidence.
    token: str | None = field(default=None, repr=False, compare=False)
    # Set only when `authenticate` was told not to burn the nonce itself: the call is not
    # authenticated until whoever acts on it has burnt this, whatever the outcome.
    unburnt_nonce: CallNonce | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class TokenRules:
    max_lifetime_seconds: int
    clock_skew_seconds: int


@dataclass(frozen=True)
class _KnownKey:
    pem: str
    client: AuthenticatedClient | None  # None: unknown client, `pem` is the decoy
    disabled: bool


def authenticate(
    db: Database,
    authorization: str | None,
    call: CallContext,
    rules: TokenRules,
    now: datetime | None = None,
    *,
    admit: Callable[[AuthenticatedClient], None] | None = None,
    burn: bool = True,
) -> AuthenticatedClient:
    """The client that signed this call, else Unauthorized.

    `admit` sees the client once everything but the nonce checked out, and may refuse it (the
    client's rate limit): a refusal burns no nonce and writes nothing.

    `burn=False`: the nonce is returned unburnt (`unburnt_nonce`) for the caller to burn in its
    own write transaction (intake: the request, its ledger entries and the nonce commit
    together), or alone when it writes nothing; until then the call is not authenticated.
    """
    token = _bearer(authorization)
    known = _key_for(db, _peek(token)["sub"])
    claims = _verify_signature(token, known.pem)
    if known.client is None:
        raise Unauthorized(BAD_SIGNATURE)  # unreachable with the decoy key; never trust it
    if known.disabled:
        # Said only to whoever holds the client's private key: the signature verified.
        raise Unauthorized("client is disabled")
    _check_binding(claims, call)
    kept_until = _check_times(claims, rules, now or datetime.now(UTC)) + NONCE_KEPT_AFTER_EXPIRY
    if admit is not None:
        admit(known.client)
    nonce = CallNonce(known.client.id, claims["nonce"], kept_until)
    if not burn:
        return replace(known.client, token=token, unburnt_nonce=nonce)
    with db.write() as session:
        nonce.burn(session)
    return replace(known.client, token=token)


def verify_stored_call(
    pem: str, token: str, *, client_id: str, body: bytes, idempotency_key: str
) -> dict[str, Any]:
    """Re-verify, long after the call, the token a request was created with: signed by this
    key, naming this client, a POST to /v1/requests binding this body and idempotency key.

    The signer's evidence (issue 9): times and the nonce are not checked again, they were when
    intake accepted the call; what matters now is that the client signed exactly these bytes.
    """
    claims = _verify_signature(token, pem)
    if claims["sub"] != client_id:
        raise Unauthorized("the token names another client")
    uri = claims["uri"]
    if not isinstance(uri, str) or uri.split("?", 1)[0] != CREATE_PATH:
        raise Unauthorized(f"the token was not for POST {CREATE_PATH}")
    call = CallContext(
        method="POST",
        uri=uri,
        body=body,
        idempotency_key=idempotency_key,
        idempotency_required=True,
    )
    _check_binding(claims, call)
    return claims


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


def _key_for(db: Database, client_id: str) -> _KnownKey:
    with db.read() as session:
        client = session.get(Client, client_id)
        if client is None:
            # The decoy costs the same signature check as a real key, so neither the answer
            # nor its timing tells an unknown client from a known one.
            return _KnownKey(_DECOY_PEM, None, disabled=False)
        found = AuthenticatedClient(id=client.id, name=client.name, role=client.role)
        return _KnownKey(client.public_key_pem, found, disabled=client.disabled_at is not None)


def _verify_signature(token: str, pem: str) -> dict[str, Any]:
    key = parse_ed25519_public_pem(pem.encode())
    try:
        # PyJWT checks the signature before the required claims: a missing claim is reported
        # only to whoever holds the key.
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
        raise Unauthorized(BAD_SIGNATURE) from None
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
    _check_idempotency_key(claims, call)
    nonce = claims["nonce"]
    if not isinstance(nonce, str) or not 8 <= len(nonce) <= MAX_NONCE_LENGTH:
        raise Unauthorized(f"token nonce must be a string of 8 to {MAX_NONCE_LENGTH} characters")


def _check_idempotency_key(claims: dict[str, Any], call: CallContext) -> None:
    """The header picks the request a retry is answered with: were it unsigned, whoever can alter
    it in transit could turn one retried withdrawal into two."""
    if call.idempotency_key is None:
        if call.idempotency_required:
            raise Unauthorized(
                f"this call needs an Idempotency-Key header and the token's {IDEMPOTENCY_CLAIM} "
                "claim equal to it"
            )
        if IDEMPOTENCY_CLAIM in claims:
            raise Unauthorized(
                f"token has an {IDEMPOTENCY_CLAIM} claim but the call has no Idempotency-Key header"
            )
        return
    if IDEMPOTENCY_CLAIM not in claims:
        raise Unauthorized(
            f"the call sends an Idempotency-Key header: the token needs an {IDEMPOTENCY_CLAIM} "
            "claim equal to it"
        )
    if claims[IDEMPOTENCY_CLAIM] != call.idempotency_key:
        raise Unauthorized(f"token {IDEMPOTENCY_CLAIM} does not match the Idempotency-Key header")


def _check_times(claims: dict[str, Any], rules: TokenRules, now: datetime) -> datetime:
    """The last instant at which this token is accepted (its `exp` plus the allowed skew).

    Compared in exact microseconds, the unit of the stored nonce times: a token must never pass
    a check that its nonce's purge, comparing datetimes, already considers past.
    """
    iat, exp = claims["iat"], claims["exp"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (iat, exp)):
        raise Unauthorized("token iat and exp must be integer seconds")
    if exp <= iat or exp - iat > rules.max_lifetime_seconds:
        raise Unauthorized(
            f"token exp must be after iat and at most {rules.max_lifetime_seconds} s later"
        )
    skew = rules.clock_skew_seconds
    elapsed = (now - _EPOCH) // _MICROSECOND
    if (iat - skew) * 1_000_000 > elapsed:
        raise Unauthorized("token iat is in the future (check the client's clock)")
    last_valid = exp + skew
    if elapsed > last_valid * 1_000_000:
        raise Unauthorized("token has expired")
    # Within seconds of `now` by the checks above, so always a representable datetime.
    return _EPOCH + timedelta(seconds=last_valid)


def _burn_nonce(session: Session, *, client_id: str, nonce: str, until: datetime) -> None:
    try:
        with session.begin_nested():
            session.add(ClientNonce(client_id=client_id, nonce=nonce, expires_at=until))
    except IntegrityError:
        raise Unauthorized("token nonce was already used") from None


def purge_expired_nonces(session: Session, now: datetime) -> int:
    """Nonces only need remembering while their token could still be accepted.

    A row goes only once `now` is strictly past its `expires_at`, which `authenticate` set at or
    after the token's last valid instant: at that very instant the nonce is still there.
    """
    result = session.execute(delete(ClientNonce).where(ClientNonce.expires_at < now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
