"""A read that fails half-way must not leave a pooled connection stuck on an old snapshot.

Otherwise every later call that happens to get that connection sees the database as it was: a
client added since is "unknown" (401), a request created since is "not found" (404).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from custody.store.database import Database
from custody.store.models import Client, LedgerEntry
from tests.support.installation import Installation


def test_a_failed_read_leaves_no_stale_snapshot(installation: Installation) -> None:
    db = Database(installation.runtime.db.url)  # own pools: the shared runtime stays clean
    try:
        with pytest.raises(RuntimeError), db.read() as session:
            rows = session.execute(select(LedgerEntry))
            assert next(iter(rows)) is not None  # a result still open when the error comes
            raise RuntimeError("a failure while a result is being read")

        added = installation.client()  # committed through the installation's own engine
        for _ in range(3):
            with db.read() as session:
                assert session.get(Client, added.id) is not None
    finally:
        db.dispose()
