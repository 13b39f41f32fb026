"""Queries for key records."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from custody.errors import NotFound
from custody.store.models import Key, KeyBackup


class KeyRecordNotFound(NotFound):
    slug = "key-not-found"


def find_key(session: Session, label: str) -> Key | None:
    return session.execute(select(Key).where(Key.label == label)).scalar_one_or_none()


def key_by_label(session: Session, label: str) -> Key:
    key = find_key(session, label)
    if key is None:
        raise KeyRecordNotFound(f"unknown key {label!r} (see `custody keys list`)")
    return key


# Built once: building a statement and its cache key cost as much as running it, and the
# signer and intake look rows up by id several times per request.
_KEY_BY_ID = select(Key).where(Key.id == bindparam("id"))


def key_by_id(session: Session, key_id: int) -> Key:
    return session.execute(_KEY_BY_ID, {"id": key_id}).scalar_one()


def keys(session: Session) -> list[Key]:
    return list(session.execute(select(Key).order_by(Key.label)).scalars())


def latest_backups(session: Session) -> dict[int, KeyBackup]:
    """The newest backup of each key that is in one, by key id."""
    rows = session.execute(select(KeyBackup).order_by(KeyBackup.created_at))
    return {row.key_id: row for row in rows.scalars()}


def find_key_by_public_key(session: Session, public_key_hex: str) -> Key | None:
    """The key record with this public key (uncompressed SEC1, lower-case hex), if any."""
    return session.execute(select(Key).where(Key.public_key == public_key_hex)).scalar_one_or_none()
