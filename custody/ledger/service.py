"""Appending to the ledger, always inside the caller's transaction (invariant 3)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from custody.ledger.canonical import canonical_bytes
from custody.ledger.events import EventKind
from custody.ledger.merkle import leaf_hash
from custody.ledger.nodes import nodes_for
from custody.ledger.tree import completed_nodes
from custody.store.base import utcnow
from custody.store.models import LedgerEntry, LedgerHead


def rfc3339(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def append(session: Session, kind: EventKind, actor: str, data: dict[str, Any]) -> LedgerEntry:
    """Add one entry at the next index; commits (or rolls back) with the caller's change.

    The index comes from an UPDATE of the single head row: the row lock (PostgreSQL) or the
    write lock (SQLite) serialises appenders until commit, so indices have no gaps or twins.
    """
    size = session.execute(
        update(LedgerHead)
        .where(LedgerHead.id == 1)
        .values(size=LedgerHead.size + 1)
        .returning(LedgerHead.size)
    ).scalar_one()
    index = size - 1
    now = utcnow()
    body = {"index": index, "time": rfc3339(now), "kind": str(kind), "actor": actor, "data": data}
    entry_bytes = canonical_bytes(body)
    row = LedgerEntry(
        index=index,
        time=now,
        kind=str(kind),
        actor=actor,
        entry=entry_bytes,
        leaf_hash=leaf_hash(entry_bytes),
    )
    session.add(row)
    session.flush()
    nodes = nodes_for(session)
    for level, node_index, digest in completed_nodes(nodes, index, row.leaf_hash):
        nodes.add(level, node_index, digest)
    return row


def ensure_head(session: Session) -> None:
    if session.get(LedgerHead, 1) is None:
        session.add(LedgerHead(id=1, size=0))
        session.flush()


def size(session: Session) -> int:
    return int(session.execute(select(LedgerHead.size).where(LedgerHead.id == 1)).scalar_one())
