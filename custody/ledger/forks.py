"""Refusing to sign a forked tree, and remembering that we did.

A `ledger.fork_detected` entry cannot go into a ledger that is itself forked, and a log line
scrolls away: each refusal is kept in `ledger_fork_detections` (append-only, like the ledger),
where people read it. Any row there means the stored ledger stopped being the one that was
signed; nothing clears it but a person who has looked.

A new detection also runs the caller's `on_fork` hook in the same transaction: the built-in
`ledger-consistency` breaker (custody.freezes.breakers), which freezes all signing. The ledger
sits below the freezes, so it is handed the hook rather than importing it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.errors import CustodyError
from custody.store.base import utcnow
from custody.store.database import Database
from custody.store.models import LedgerForkDetection

log = logging.getLogger("custody.ledger")


class ForkDetected(CustodyError):
    """The tree to sign does not provably extend the last signed checkpoint."""

    status = 500
    title = "Ledger fork detected"
    slug = "ledger-fork-detected"

    def __init__(self, reason: str, *, checkpoint_size: int | None, tree_size: int) -> None:
        super().__init__(f"refusing to sign a checkpoint: {reason}")
        self.checkpoint_size = checkpoint_size
        self.tree_size = tree_size


ForkHook = Callable[[Session, ForkDetected], None]
"""Runs in the transaction that records a new detection (and rolls back with it)."""


def record(db: Database, fork: ForkDetected, on_fork: ForkHook | None) -> None:
    """Keep the detection once per reason and checkpoint: the checkpointer retries every few
    seconds and would otherwise bury the first row under copies. Never raises: the refusal
    itself must reach the caller even when the database cannot take the record (a failed
    hook rolls the record back, so the next attempt runs both again)."""
    try:
        with db.write() as session:
            if not _known(session, fork):
                session.add(
                    LedgerForkDetection(
                        detected_at=utcnow(),
                        checkpoint_size=fork.checkpoint_size,
                        tree_size=fork.tree_size,
                        reason=fork.message,
                    )
                )
                session.flush()
                if on_fork is not None:
                    on_fork(session, fork)
    except Exception:
        log.exception("could not record the fork detection: %s", fork.message)


def _known(session: Session, fork: ForkDetected) -> bool:
    found = session.execute(
        select(LedgerForkDetection.id)
        .where(LedgerForkDetection.checkpoint_size == fork.checkpoint_size)
        .where(LedgerForkDetection.reason == fork.message)
        .limit(1)
    ).first()
    return found is not None


def fork_detections(session: Session) -> Sequence[LedgerForkDetection]:
    """Every detection, oldest first (what a freeze checks before releasing a signature)."""
    return (
        session.execute(select(LedgerForkDetection).order_by(LedgerForkDetection.id))
        .scalars()
        .all()
    )
