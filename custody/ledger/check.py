"""Check the stored ledger against itself: contiguous indices, canonical bytes, leaf hashes.

This is the first cut of `custody ledger verify`; signed checkpoints and proofs build on it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger.canonical import canonical_bytes
from custody.ledger.merkle import leaf_hash, root_from_leaf_hashes
from custody.store.models import LedgerEntry, LedgerHead

BATCH = 5_000


@dataclass(frozen=True)
class LedgerReport:
    size: int
    root: bytes
    fault: str | None

    @property
    def ok(self) -> bool:
        return self.fault is None


def check(session: Session, progress: Callable[[int], None] | None = None) -> LedgerReport:
    head = session.execute(select(LedgerHead.size).where(LedgerHead.id == 1)).scalar_one_or_none()
    leaves: list[bytes] = []
    expected = 0
    last = -1
    while True:
        rows = (
            session.execute(
                select(LedgerEntry)
                .where(LedgerEntry.index > last)
                .order_by(LedgerEntry.index)
                .limit(BATCH)
            )
            .scalars()
            .all()
        )
        if not rows:
            break
        for row in rows:
            fault = _entry_fault(row, expected)
            if fault is not None:
                return LedgerReport(len(leaves), root_from_leaf_hashes(leaves), fault)
            leaves.append(row.leaf_hash)
            expected += 1
        last = rows[-1].index
        if progress is not None:
            progress(expected)
    fault = None
    if head is None:
        fault = "ledger head row is missing"
    elif head != expected:
        fault = f"ledger head says {head} entries but {expected} are stored (truncated or gap)"
    return LedgerReport(expected, root_from_leaf_hashes(leaves), fault)


def _entry_fault(row: LedgerEntry, expected: int) -> str | None:  # noqa: PLR0911  (one return per named fault)
    if row.index != expected:
        return f"index {expected}: missing (next stored entry is {row.index})"
    try:
        body = json.loads(row.entry)
    except ValueError:
        return f"index {expected}: entry is not JSON"
    if not isinstance(body, dict) or body.get("index") != expected:
        return f"index {expected}: entry does not name its own index"
    if canonical_bytes(body) != row.entry:
        return f"index {expected}: entry bytes are not RFC 8785 canonical"
    if body.get("kind") != row.kind or body.get("actor") != row.actor:
        return f"index {expected}: kind or actor column differs from the entry"
    if leaf_hash(row.entry) != row.leaf_hash:
        return f"index {expected}: stored leaf hash does not match the entry"
    return None
