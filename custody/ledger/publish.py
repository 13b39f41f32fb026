"""Witnessing: copy every new checkpoint to a place outside the database.

A target is a file path (JSON lines `{"tree_size", "note"}` appended and fsynced) or an http(s)
URL (each note POSTed as text/plain). What went where is remembered in `ledger_publications`;
`custody ledger verify --witness FILE` later checks the log against such a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.errors import Unavailable
from custody.store.base import utcnow
from custody.store.database import Database
from custody.store.models import LedgerCheckpoint, LedgerPublication


def publish(db: Database, target: str) -> int:
    """Publish every checkpoint not yet sent to `target`, oldest first; returns how many."""
    with db.read() as session:
        pending = _pending(session, target)
    for tree_size, note in pending:
        if target.startswith(("http://", "https://")):
            _post(target, note)
        else:
            _append(Path(target), tree_size, note)
        with db.write() as session:
            session.add(
                LedgerPublication(target=target, tree_size=tree_size, published_at=utcnow())
            )
    return len(pending)


def _pending(session: Session, target: str) -> list[tuple[int, str]]:
    done = select(LedgerPublication.tree_size).where(LedgerPublication.target == target)
    rows = session.execute(
        select(LedgerCheckpoint.tree_size, LedgerCheckpoint.note)
        .where(LedgerCheckpoint.tree_size.not_in(done))
        .order_by(LedgerCheckpoint.tree_size)
    )
    return [(size, note) for size, note in rows]


def _append(path: Path, tree_size: int, note: str) -> None:
    line = json.dumps({"tree_size": tree_size, "note": note}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _post(url: str, note: str) -> None:
    try:
        answer = httpx.post(
            url,
            content=note.encode(),
            timeout=10,
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
    except httpx.HTTPError as exc:
        raise Unavailable(f"witness {url} unreachable: {exc}") from None
    if answer.status_code >= 300:
        raise Unavailable(f"witness {url} answered {answer.status_code}")
