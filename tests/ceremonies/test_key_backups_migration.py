"""Migration 0014: every key made before it was generated never extractable, so each becomes a
key no backup can hold (`backup = 'none'`), and `key_backups` starts empty."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from custody.store.base import UtcDateTime
from custody.store.database import normalise_url
from custody.store.migrate import alembic_config
from tests.support.postgres import PostgresServer

KEYS = sa.table(
    "keys",
    *(sa.column(c) for c in ("label", "algorithm", "token", "key_id", "public_key")),
    sa.column("created_at", UtcDateTime()),
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'custody.db'}"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    url = server.create_database()
    try:
        yield url
    finally:
        server.drop_database(url)


def test_keys_from_before_are_not_backup_able(database_url: str) -> None:
    config = alembic_config(database_url)
    before = ScriptDirectory.from_config(config).get_revision("0014").down_revision
    assert isinstance(before, str)
    command.upgrade(config, before)
    engine = sa.create_engine(normalise_url(database_url))
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.insert(KEYS),
                [
                    {
                        "label": "old-wallet",
                        "algorithm": "secp256k1",
                        "token": "t",
                        "key_id": "01",
                        "public_key": "04" + "11" * 64,
                        "created_at": datetime.now(UTC),
                    },
                ],
            )
        command.upgrade(config, "head")
        with engine.begin() as conn:
            rows = conn.execute(sa.text("SELECT label, backup FROM keys")).all()
            assert [tuple(row) for row in rows] == [("old-wallet", "none")]
            assert conn.execute(sa.text("SELECT COUNT(*) FROM key_backups")).scalar_one() == 0
            with pytest.raises(sa.exc.IntegrityError):  # only the two known kinds
                conn.execute(sa.text("UPDATE keys SET backup = 'clear'"))
        command.downgrade(config, before)
        command.upgrade(config, "head")
    finally:
        engine.dispose()
