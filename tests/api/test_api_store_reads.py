"""A read that fails half-way must not leave a pooled connection stuck on an old snapshot.

An error raised while a result is open (as `GET /v1/requests` does today when `Result.tuples()`
warns) leaves the SQLite statement un-reset for as long as anything still references the
traceback: a log record, an error reporter, or a reference cycle waiting for the garbage
collector. Until then the pooled connection reads the database as it was: a client added since
is "unknown" (401), a request created since is "not found" (404).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from custody.store.database import Database
from custody.store.models import Client, LedgerEntry
from tests.support.installation import Installation


def _fail_while_reading(db: Database, retained: list[Any]) -> None:
    with db.read() as session:
        retained.append(session.execute(select(LedgerEntry.kind)))
        raise RuntimeError("a failure while a result is open")


def test_a_failed_read_leaves_no_stale_snapshot(installation: Installation) -> None:
    db = Database(installation.runtime.db.url)  # own pools: the shared runtime stays clean
    retained: list[Any] = []  # what a kept traceback would keep alive
    try:
        with pytest.raises(RuntimeError, match="result is open"):
            _fail_while_reading(db, retained)

        added = installation.client()  # committed through the installation's own engine
        for _ in range(3):
            with db.read() as session:
                assert session.get(Client, added.id) is not None, "read a stale snapshot"
    finally:
        retained.clear()
        db.dispose()
