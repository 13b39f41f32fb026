"""upgrade_to_head: a database at head is left as it is without an Alembic run; one behind head,
or a new one, is brought to head, however often the process asked before."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from custody.store import migrate
from custody.store.database import normalise_url
from custody.store.migrate import alembic_config, upgrade_to_head


def _revisions(url: str) -> set[str]:
    engine = sa.create_engine(normalise_url(url))
    try:
        with engine.connect() as connection:
            return {row[0] for row in connection.execute(sa.text("SELECT * FROM alembic_version"))}
    finally:
        engine.dispose()


def test_a_database_behind_head_is_upgraded_after_one_at_head_was_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = set(script.get_heads())
    (newest,) = head
    before_head = script.get_revision(newest).down_revision
    assert isinstance(before_head, str)
    behind = f"sqlite:///{tmp_path / 'behind.db'}"
    command.upgrade(alembic_config(behind), before_head)
    at_head = f"sqlite:///{tmp_path / 'at-head.db'}"
    upgrade_to_head(at_head)  # a new database: migrated
    assert _revisions(at_head) == head

    runs: list[str] = []
    real_upgrade = command.upgrade
    monkeypatch.setattr(
        migrate.command,
        "upgrade",
        lambda config, target: runs.append(target) or real_upgrade(config, target),
    )
    upgrade_to_head(at_head)
    assert runs == []  # nothing to do, and no Alembic run to find that out

    upgrade_to_head(behind)
    assert runs == ["head"]
    assert _revisions(behind) == head
