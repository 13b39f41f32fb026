"""The ledger table refuses UPDATE and DELETE at the database level (and TRUNCATE on PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.support.installation import Installation


def _rows(inst: Installation) -> list[tuple[int, bytes, bytes, str, str]]:
    with inst.runtime.db.engine.connect() as conn:
        return [
            (int(r[0]), bytes(r[1]), bytes(r[2]), str(r[3]), str(r[4]))
            for r in conn.execute(
                text(
                    'SELECT "index", entry, leaf_hash, kind, actor FROM ledger_entries '
                    'ORDER BY "index"'
                )
            )
        ]


def _refused(inst: Installation, statement: str, **params: object) -> str:
    before = _rows(inst)
    assert before, "the installation has ledger entries"
    with pytest.raises(DBAPIError) as refused, inst.runtime.db.engine.begin() as conn:
        conn.execute(text(statement), params)
    assert _rows(inst) == before
    return str(refused.value)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET actor = 'attacker' WHERE \"index\" = 0",
        "UPDATE ledger_entries SET entry = :junk",
        'UPDATE ledger_entries SET leaf_hash = :junk WHERE "index" = 0',
        'UPDATE ledger_entries SET "index" = "index" + 1000000',
    ],
)
def test_update_is_refused(installation: Installation, statement: str) -> None:
    message = _refused(installation, statement, junk=b"\x00" * 32)
    assert "append-only" in message


@pytest.mark.parametrize(
    "statement",
    [
        'DELETE FROM ledger_entries WHERE "index" = 0',
        'DELETE FROM ledger_entries WHERE "index" = (SELECT MAX("index") FROM ledger_entries)',
        "DELETE FROM ledger_entries",
    ],
)
def test_delete_is_refused(installation: Installation, statement: str) -> None:
    assert "append-only" in _refused(installation, statement)


def test_truncate_is_refused_on_postgres(installation: Installation) -> None:
    if installation.backend != "postgres":
        pytest.skip("SQLite has no TRUNCATE; DELETE without WHERE is tested above")
    assert "append-only" in _refused(installation, "TRUNCATE ledger_entries")
    assert "append-only" in _refused(installation, "TRUNCATE ledger_entries CASCADE")


def test_appending_still_works_after_refusals(installation: Installation) -> None:
    before = _rows(installation)
    installation.client()
    after = _rows(installation)
    assert after[: len(before)] == before
    # the client and the configuration seal that now covers it
    assert [row[3] for row in after[len(before) :]] == ["client.added", "configuration.sealed"]
