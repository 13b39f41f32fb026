from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from custody.hsm import DevToken
from tests.support.installation import Installation, make_installation


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def own_installation(
    request: pytest.FixtureRequest, tmp_path: Path, hsm_dev_token: DevToken
) -> Iterator[Installation]:
    """A fresh installation of this test's own, with some history: free to be tampered with."""
    backend = request.param
    database_url = None
    if backend == "postgres":
        database_url = request.getfixturevalue("pg_server").create_database()
    home = tmp_path / f"tamper-{backend}-{secrets.token_hex(4)}"
    inst = make_installation(home, hsm_dev_token, database_url=database_url, backend=backend)
    try:
        inst.wallet()
        inst.client()
        inst.allow_all_policy()
        inst.wallet()
        yield inst
    finally:
        inst.close()
        if database_url is not None:
            request.getfixturevalue("pg_server").drop_database(database_url)


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
