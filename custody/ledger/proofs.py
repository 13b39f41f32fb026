"""Answers for auditors: entries, inclusion and consistency proofs against signed sizes."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.errors import ValidationFailed
from custody.ledger import service
from custody.ledger.nodes import SessionNodes, nodes_for
from custody.ledger.schemas import (
    ConsistencyProof,
    InclusionProof,
    LedgerEntries,
    LedgerEntryBody,
    LedgerEntryView,
)
from custody.ledger.tree import NodeReader, consistency_proof, inclusion_proof, root
from custody.store.models import LedgerEntry

MAX_ENTRIES_PAGE = 1000


def entries(session: Session, start: int, limit: int) -> LedgerEntries:
    if start < 0 or not 1 <= limit <= MAX_ENTRIES_PAGE:
        raise ValidationFailed(f"start must be >= 0 and limit between 1 and {MAX_ENTRIES_PAGE}")
    rows = session.execute(
        select(LedgerEntry)
        .where(LedgerEntry.index >= start)
        .order_by(LedgerEntry.index)
        .limit(limit)
    ).scalars()
    return LedgerEntries(
        entries=[
            LedgerEntryView(
                index=row.index,
                entry=LedgerEntryBody.model_validate_json(row.entry),
                leaf_hash=row.leaf_hash.hex(),
            )
            for row in rows
        ]
    )


def _prefetched(session: Session, *computations: Callable[[NodeReader], object]) -> SessionNodes:
    """Learn which stored subtrees the computations read, then load them in one query.

    A proof touches O(log n) subtrees; fetching them one by one costs a round trip each.
    """
    wanted: list[tuple[int, int]] = []

    def record(level: int, index: int) -> bytes:
        wanted.append((level, index))
        return b"\x00" * 32

    for compute in computations:
        compute(record)
    nodes = nodes_for(session)
    nodes.prefetch(wanted)
    return nodes


def _check_size(session: Session, tree_size: int) -> None:
    current = service.size(session)
    if not 0 < tree_size <= current:
        raise ValidationFailed(f"tree_size must be between 1 and the current size {current}")


def inclusion(session: Session, index: int, tree_size: int) -> InclusionProof:
    _check_size(session, tree_size)
    if not 0 <= index < tree_size:
        raise ValidationFailed(f"index must be between 0 and tree_size - 1 ({tree_size - 1})")
    nodes = _prefetched(
        session,
        lambda r: r(0, index),
        lambda r: root(r, tree_size),
        lambda r: inclusion_proof(r, index, tree_size),
    )
    return InclusionProof(
        index=index,
        tree_size=tree_size,
        leaf_hash=nodes(0, index).hex(),
        root_hash=root(nodes, tree_size).hex(),
        proof=[h.hex() for h in inclusion_proof(nodes, index, tree_size)],
    )


def consistency(session: Session, old_size: int, new_size: int) -> ConsistencyProof:
    _check_size(session, new_size)
    if not 0 < old_size <= new_size:
        raise ValidationFailed("from must be between 1 and to")
    nodes = _prefetched(
        session,
        lambda r: root(r, old_size),
        lambda r: root(r, new_size),
        lambda r: consistency_proof(r, old_size, new_size),
    )
    return ConsistencyProof(
        from_size=old_size,
        to_size=new_size,
        old_root_hash=root(nodes, old_size).hex(),
        new_root_hash=root(nodes, new_size).hex(),
        proof=[h.hex() for h in consistency_proof(nodes, old_size, new_size)],
    )
