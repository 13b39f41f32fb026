"""Queries of the ceremonies: which backups this installation's ledger records."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger.events import EventKind
from custody.store.models import LedgerEntry


def backup_entry_index(session: Session, manifest_sha256: str) -> int | None:
    """The index of the `ceremony.backup` entry that recorded this manifest, if any."""
    rows = session.execute(
        select(LedgerEntry.index, LedgerEntry.entry)
        .where(LedgerEntry.kind == str(EventKind.CEREMONY_BACKUP))
        .order_by(LedgerEntry.index)
    )
    for index, entry in rows:
        if json.loads(entry)["data"].get("manifest_sha256") == manifest_sha256:
            return int(index)
    return None
