"""Reading and writing stored subtree hashes, with a per-process cache.

Nodes never change once written (the table is append-only), so cached values cannot go stale;
a rolled-back transaction's nodes are only cached after commit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from custody.errors import CustodyError
from custody.store.database import database_key
from custody.store.models import LedgerEntry, LedgerNode

_CACHE_LIMIT = 200_000


class MissingNode(CustodyError):
    status = 500
    title = "Ledger tree incomplete"
    slug = "ledger-tree-incomplete"


class NodeCache:
    def __init__(self, limit: int = _CACHE_LIMIT) -> None:
        self._items: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._lock = threading.Lock()
        self._limit = limit

    def get(self, key: tuple[int, int]) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[int, int], value: bytes) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._limit:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_caches: dict[str, NodeCache] = {}
_caches_lock = threading.Lock()


def cache_for(session: Session) -> NodeCache:
    """One cache per database: a process may serve several (tests do), and (level, index)
    means a different subtree in each."""
    key = database_key(session)
    with _caches_lock:
        return _caches.setdefault(key, NodeCache())


def clear_caches() -> None:
    with _caches_lock:
        for cache in _caches.values():
            cache.clear()


class SessionNodes:
    """A NodeReader over one session: cache first, then the database; remembers new nodes."""

    def __init__(self, session: Session, cache: NodeCache | None = None) -> None:
        self.session = session
        self.cache = cache if cache is not None else cache_for(session)
        self.pending: dict[tuple[int, int], bytes] = {}

    def __call__(self, level: int, index: int) -> bytes:
        key = (level, index)
        value = self.pending.get(key) or self.cache.get(key)
        if value is not None:
            return value
        if level == 0:
            stored = self.session.execute(
                select(LedgerEntry.leaf_hash).where(LedgerEntry.index == index)
            ).scalar_one_or_none()
        else:
            stored = self.session.execute(
                select(LedgerNode.hash).where(LedgerNode.level == level, LedgerNode.index == index)
            ).scalar_one_or_none()
        if stored is None:
            raise MissingNode(f"ledger subtree ({level}, {index}) is not stored")
        value = bytes(stored)
        self.cache.put(key, value)
        return value

    def prefetch(self, keys: list[tuple[int, int]]) -> None:
        """Load many nodes in one query per kind (proofs know their keys up front)."""
        missing = {k for k in keys if k not in self.pending and self.cache.get(k) is None}
        leaves = [index for level, index in missing if level == 0]
        inner = [key for key in missing if key[0] > 0]
        if leaves:
            rows = self.session.execute(
                select(LedgerEntry.index, LedgerEntry.leaf_hash).where(
                    LedgerEntry.index.in_(leaves)
                )
            )
            for index, digest in rows:
                self.cache.put((0, index), bytes(digest))
        if inner:
            # OR of primary-key lookups: both SQLite and PostgreSQL use the key for each term
            # (SQLite does not for a row-value IN list).
            condition = or_(
                *(and_(LedgerNode.level == lv, LedgerNode.index == ix) for lv, ix in inner)
            )
            found = self.session.execute(
                select(LedgerNode.level, LedgerNode.index, LedgerNode.hash).where(condition)
            )
            for level, node_index, digest in found:
                self.cache.put((level, node_index), bytes(digest))

    def publish_to_cache(self) -> None:
        for key, value in self.pending.items():
            self.cache.put(key, value)
        self.pending.clear()


def nodes_for(session: Session) -> SessionNodes:
    """One node reader per session transaction. Nodes it learns from appends reach the shared
    cache only when the outermost transaction commits (see custody.ledger.service)."""
    nodes = session.info.get(_NODES_KEY)
    if isinstance(nodes, SessionNodes):
        return nodes
    nodes = SessionNodes(session)
    session.info[_NODES_KEY] = nodes
    return nodes


def publish_nodes(session: Session) -> None:
    nodes = session.info.pop(_NODES_KEY, None)
    if isinstance(nodes, SessionNodes):
        nodes.publish_to_cache()


def discard_nodes(session: Session) -> None:
    session.info.pop(_NODES_KEY, None)


_NODES_KEY = "custody.ledger.nodes"
