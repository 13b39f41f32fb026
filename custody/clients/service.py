"""Registering, disabling and re-keying clients. The server keeps only their Ed25519 public keys
(invariant 9); every change is a ledger entry, so an auditor knows which key spoke for a client
and whether it was allowed to at any time."""

from __future__ import annotations

import functools
import json
import secrets

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.errors import Conflict, NotFound, ValidationFailed
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.names import validate_name
from custody.store.base import utcnow
from custody.store.models import Client, LedgerEntry


class InvalidPublicKey(ValidationFailed):
    slug = "invalid-public-key"


# Every authenticated call, and the signer for every request it claims, verifies a token with
# the client's stored key: the parsed key is kept per process for the same PEM (it is immutable;
# a refused PEM is not kept).
@functools.lru_cache(maxsize=256)
def parse_ed25519_public_pem(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise InvalidPublicKey("public key is not a PEM-encoded public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidPublicKey("client keys must be Ed25519 (PEM SubjectPublicKeyInfo)")
    return key


# `trading` submits requests; `auditor` reads the ledger; `operator` freezes signing (and lists
# freezes) over the API, and nothing else.
ROLES = ("trading", "auditor", "operator")


# The approver app's own client (custody.web.maker): its key is in the HSM, it never calls the
# API, and it signs each maker request's call there (custody.clients.tokens).
INTERNAL_ROLE = "internal"
INTERNAL_CLIENT = "approver-app"


def add_client(
    session: Session, *, name: str, public_key_pem: bytes, actor: str, role: str = "trading"
) -> Client:
    validate_name("client", name)
    if role not in ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    key = parse_ed25519_public_pem(public_key_pem)
    if session.execute(select(Client).where(Client.name == name)).scalar_one_or_none():
        raise Conflict(f"client {name!r} already exists")
    client = Client(
        id="cli_" + secrets.token_hex(12),
        name=name,
        public_key_pem=_pem(key),
        role=role,
        created_at=utcnow(),
    )
    session.add(client)
    session.flush()
    ledger.append(
        session,
        EventKind.CLIENT_ADDED,
        actor,
        {"id": client.id, "name": name, "public_key": _raw_hex(key), "role": role},
    )
    return client


def disable(session: Session, *, name: str, actor: str) -> Client:
    """From now on every call with this client's tokens is refused (401)."""
    client = by_name(session, name)
    if client.disabled_at is None:
        client.disabled_at = utcnow()
        ledger.append(session, EventKind.CLIENT_DISABLED, actor, _ids(client))
    return client


def enable(session: Session, *, name: str, actor: str) -> Client:
    client = by_name(session, name)
    if client.disabled_at is not None:
        client.disabled_at = None
        ledger.append(session, EventKind.CLIENT_ENABLED, actor, _ids(client))
    return client


def rotate_key(session: Session, *, name: str, public_key_pem: bytes, actor: str) -> Client:
    """Replace the client's key: tokens signed by the old key are refused from now on."""
    client = by_name(session, name)
    new = parse_ed25519_public_pem(public_key_pem)
    old = parse_ed25519_public_pem(client.public_key_pem.encode())
    if _raw_hex(new) == _raw_hex(old):
        # Nothing would change, yet the operator believes the old key is now useless.
        raise ValidationFailed(f"that is already client {name!r}'s key")
    client.public_key_pem = _pem(new)
    ledger.append(
        session,
        EventKind.CLIENT_KEY_ROTATED,
        actor,
        _ids(client) | {"public_key": _raw_hex(new), "previous_public_key": _raw_hex(old)},
    )
    return client


def previous_keys(session: Session, client_id: str) -> list[str]:
    """The client's earlier public keys (PEM), newest first, from its `client.key_rotated`
    ledger entries: a request it signed before a rotation is still its evidence."""
    keys = []
    entries = session.execute(
        select(LedgerEntry.entry)
        .where(LedgerEntry.kind == EventKind.CLIENT_KEY_ROTATED.value)
        .order_by(LedgerEntry.index.desc())
    ).scalars()
    for entry in entries:
        data = json.loads(entry)["data"]
        if data.get("id") == client_id:
            raw = bytes.fromhex(str(data["previous_public_key"]))
            keys.append(_pem(Ed25519PublicKey.from_public_bytes(raw)))
    return keys


def by_name(session: Session, name: str) -> Client:
    client = session.execute(select(Client).where(Client.name == name)).scalar_one_or_none()
    if client is None:
        raise NotFound(f"unknown client {name!r}")
    return client


def _ids(client: Client) -> dict[str, str]:
    return {"id": client.id, "name": client.name}


def _pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _raw_hex(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def list_clients(session: Session) -> list[Client]:
    return list(session.execute(select(Client).order_by(Client.name)).scalars())


def get_client(session: Session, client_id: str) -> Client:
    client = session.get(Client, client_id)
    if client is None:
        raise NotFound(f"unknown client {client_id!r}")
    return client


def ensure_internal_client(session: Session, *, public_key: bytes, actor: str) -> Client:
    """The approver app's client, holding the HSM key whose raw Ed25519 public key is given:
    created on first use, re-keyed when an older installation made it with a throwaway key."""
    pem = internal_client_pem(public_key)
    client = session.execute(
        select(Client).where(Client.name == INTERNAL_CLIENT)
    ).scalar_one_or_none()
    if client is None:
        client = add_client(session, name=INTERNAL_CLIENT, public_key_pem=pem, actor=actor)
        client.role = INTERNAL_ROLE  # not a trading client: it may not use /v1 endpoints
    elif client.public_key_pem.encode() != pem:
        client = rotate_key(session, name=INTERNAL_CLIENT, public_key_pem=pem, actor=actor)
    return client


def internal_client_pem(public_key: bytes) -> bytes:
    """The PEM the internal client holds for the app's raw Ed25519 public key."""
    return _pem(Ed25519PublicKey.from_public_bytes(public_key)).encode()
