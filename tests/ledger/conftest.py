from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.support.installation import Installation


@pytest.fixture
def own_installation(fresh_installation: Installation) -> Installation:
    """A fresh installation of this test's own, with some history: free to be tampered with."""
    inst = fresh_installation
    inst.wallet()
    inst.client()
    inst.allow_all_policy()
    inst.wallet()
    return inst


def drop_ledger_triggers(inst: Installation) -> None:
    """What an attacker with database access does first."""
    if inst.backend == "postgres":
        statements = ["DROP TRIGGER ledger_entries_no_update ON ledger_entries"]
    else:
        statements = [
            "DROP TRIGGER ledger_entries_no_update",
            "DROP TRIGGER ledger_entries_no_delete",
        ]
    with inst.runtime.db.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
