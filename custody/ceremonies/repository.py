"""Queries of the ceremonies: which backups this installation's ledger records."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger.events import EventKind
from custody.store.models import LedgerEntry

_RECORDING = (str(EventKind.CEREMONY_BACKUP), str(EventKind.CEREMONY_RESTORE))


def backup_entry_index(session: Session, manifest_sha256: str) -> int | None:
    """The index of the first entry that recorded this manifest: the `ceremony.backup` that
    made it, or the `ceremony.restore` that brought this installation's keys from it."""
    rows = session.execute(
        select(LedgerEntry.index, LedgerEntry.entry)
        .where(LedgerEntry.kind.in_(_RECORDING))
        .order_by(LedgerEntry.index)
    )
    for index, entry in rows:
        if json.loads(entry)["data"].get("manifest_sha256") == manifest_sha256:
            return int(index)
    return None


def entry_data(session: Session, index: int) -> dict[str, Any]:
    """The `data` of the ledger entry at `index` (a ceremony's own entry, for its transcript)."""
    entry = session.execute(
        select(LedgerEntry.entry).where(LedgerEntry.index == index)
    ).scalar_one()
    data: dict[str, Any] = json.loads(entry)["data"]
    return data
