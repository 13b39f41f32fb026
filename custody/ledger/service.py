"""Appending to the ledger, always inside the caller's transaction (invariant 3).

The first append of a transaction locks the single head row (a row lock on PostgreSQL; SQLite
already holds its write lock), which serialises appenders until commit: indices have no gaps or
twins. Entries and new subtree nodes are collected and written just before the transaction
commits, in one multi-row insert each with one head update, so a transaction that appends many
entries (group commit) pays per transaction, not per entry. A reader inside the appending
transaction sees its entries with `pending_of`, and a rollback discards the collected rows with
everything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.orm import Session, SessionTransaction

from custody.errors import CustodyError
from custody.ledger.canonical import canonical_bytes
from custody.ledger.events import EventKind
from custody.ledger.merkle import leaf_hash
from custody.ledger.nodes import discard_nodes, nodes_for, publish_nodes
from custody.ledger.tree import completed_nodes
from custody.store.base import utcnow
from custody.store.models import LedgerEntry, LedgerHead, LedgerNode

_STATE_KEY = "custody.ledger.pending"
_LISTENING_KEY = "custody.ledger.listening"


class LedgerStateLost(CustodyError):
    status = 500
    title = "Ledger write refused"
    slug = "ledger-write-refused"


def rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Appended:
    index: int
    kind: str
    entry: bytes
    leaf_hash: bytes


@dataclass
class _Pending:
    base: int
    entries: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    savepoints: dict[int, int] = field(default_factory=dict)
    poisoned: str | None = None

    @property
    def next_index(self) -> int:
        return self.base + len(self.entries)


def append(session: Session, kind: EventKind, actor: str, data: dict[str, Any]) -> Appended:
    """Add one entry at the next index; it commits (or rolls back) with the caller's change."""
    pending = _pending(session)
    index = pending.next_index
    now = utcnow()
    body = {"index": index, "time": rfc3339(now), "kind": str(kind), "actor": actor, "data": data}
    entry_bytes = canonical_bytes(body)
    leaf = leaf_hash(entry_bytes)
    pending.entries.append(
        {
            "index": index,
            "time": now,
            "kind": str(kind),
            "actor": actor,
            "entry": entry_bytes,
            "leaf_hash": leaf,
        }
    )
    nodes = nodes_for(session)
    nodes.pending[(0, index)] = leaf
    for level, node_index, digest in completed_nodes(nodes, index, leaf):
        nodes.pending[(level, node_index)] = digest
        pending.nodes.append({"level": level, "index": node_index, "hash": digest})
    return Appended(index, str(kind), entry_bytes, leaf)


def pending_entries(session: Session) -> list[tuple[str, str]]:
    """(kind, actor) of the entries this transaction appended so far, oldest first."""
    state = session.info.get(_STATE_KEY)
    if not isinstance(state, _Pending):
        return []
    return [(entry["kind"], entry["actor"]) for entry in state.entries]


def pending_of(session: Session, kinds: tuple[str, ...]) -> list[tuple[str, datetime, bytes]]:
    """(kind, time, entry bytes) of the entries of these kinds this transaction appended so far,
    oldest first: they are written only at commit, so a reader that must see its own
    transaction's entries (the signer counting from the ledger) adds these to what it read."""
    state = session.info.get(_STATE_KEY)
    if not isinstance(state, _Pending):
        return []
    return [(e["kind"], e["time"], e["entry"]) for e in state.entries if e["kind"] in kinds]


# Built once: every write transaction that appends runs them, and building a statement and its
# cache key cost as much as running it.
_LOCK_HEAD = (
    update(LedgerHead)
    .where(LedgerHead.id == 1)
    .values(size=LedgerHead.size)
    .returning(LedgerHead.size)
)
_INSERT_ENTRIES = insert(LedgerEntry)
_INSERT_NODES = insert(LedgerNode)
_GROW_HEAD = update(LedgerHead).where(LedgerHead.id == 1).values(size=bindparam("new_size"))


def lock(session: Session) -> None:
    """Take the ledger head lock now (it is held until commit); appends later reuse it."""
    _pending(session)


def _pending(session: Session) -> _Pending:
    state = session.info.get(_STATE_KEY)
    if isinstance(state, _Pending):
        if state.poisoned:
            raise LedgerStateLost(state.poisoned)
        return state
    # Locks the head row until commit; the write itself happens in _flush_pending.
    base = session.execute(_LOCK_HEAD).scalar_one()
    state = _Pending(base=int(base))
    session.info[_STATE_KEY] = state
    _install_listeners(session)
    return state


def _install_listeners(session: Session) -> None:
    """Once per session. SQLAlchemy fires commit and rollback events for savepoints too, so
    each handler first asks whether the transaction that ends is the outermost one."""
    if session.info.get(_LISTENING_KEY):
        return
    session.info[_LISTENING_KEY] = True
    event.listen(session, "before_commit", _flush_pending)
    event.listen(session, "after_commit", _after_commit)
    event.listen(session, "after_transaction_create", _savepoint_started)
    event.listen(session, "after_soft_rollback", _rolled_back)


def _flush_pending(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint: the entries stay pending until the outermost commit
    state = session.info.get(_STATE_KEY)
    if not isinstance(state, _Pending):
        return
    if state.poisoned:
        raise LedgerStateLost(state.poisoned)
    session.info.pop(_STATE_KEY, None)
    if not state.entries:
        return
    session.execute(_INSERT_ENTRIES, state.entries)
    if state.nodes:
        session.execute(_INSERT_NODES, state.nodes)
    session.execute(_GROW_HEAD, {"new_size": state.next_index})


def _after_commit(session: Session) -> None:
    if not session.in_nested_transaction():
        publish_nodes(session)


def _savepoint_started(session: Session, transaction: SessionTransaction) -> None:
    state = session.info.get(_STATE_KEY)
    if transaction.nested and isinstance(state, _Pending):
        state.savepoints[id(transaction)] = len(state.entries)


def _rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    state = session.info.get(_STATE_KEY)
    if not previous_transaction.nested:
        session.info.pop(_STATE_KEY, None)
        discard_nodes(session)
        return
    if isinstance(state, _Pending):
        mark = state.savepoints.pop(id(previous_transaction), len(state.entries))
        if len(state.entries) > mark:
            # Entries appended inside a rolled-back savepoint: the index sequence and tree are
            # no longer what was computed. Refuse to commit this transaction (fail closed).
            state.poisoned = "ledger entries were appended inside a savepoint that rolled back"


def size(session: Session) -> int:
    return int(session.execute(select(LedgerHead.size).where(LedgerHead.id == 1)).scalar_one())
