"""`custody init` keeps the database to its owner: SQLite would create `custody.db` (and give
its -wal and -shm files the same mode) readable by everyone on the machine whenever the umask
allows it, whatever folder it is in. init also tightens an older database, and warns in one
line about a CUSTODY_HOME that others can look into (it does not change the operator's folder).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from custody.hsm import DevToken
from custody.store.database import Database
from tests.support.cli import CliResult, invoke, ok_json
from tests.support.installation import installation_env


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The common umask, which lets SQLite's default 0644 through."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _init(home: Path, token: DevToken, *extra: str) -> CliResult:
    return invoke(["init", *extra], installation_env(home, token, None))


def test_the_database_and_its_wal_files_are_owner_only(
    tmp_path: Path, hsm_dev_token: DevToken
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    ok_json(_init(home, hsm_dev_token, "--json"))
    database = home / "custody.db"
    assert _mode(database) == 0o600
    # a connection that wrote keeps its -wal and -shm files open
    db = Database(f"sqlite:///{database}")
    try:
        with db.write() as session:
            session.execute(text("PRAGMA user_version = 0"))
        for companion in ("custody.db-wal", "custody.db-shm"):
            assert _mode(home / companion) == 0o600, companion
    finally:
        db.dispose()


def test_an_open_home_gets_one_warning_line(tmp_path: Path, hsm_dev_token: DevToken) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)  # as an operator's `mkdir` makes it
    result = _init(home, hsm_dev_token)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("warning:")
    assert str(home) in lines[0]
    assert "0755" in lines[0]
    assert f"chmod 700 {home}" in lines[0]
    assert _mode(home) == 0o755  # the operator's folder is theirs to change
    assert _mode(home / "custody.db") == 0o600


def test_a_private_home_gets_no_warning(tmp_path: Path, hsm_dev_token: DevToken) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    result = _init(home, hsm_dev_token, "--json")
    assert ok_json(result)["warnings"] == []
    assert result.stderr == ""


def test_an_existing_readable_database_is_tightened(
    tmp_path: Path, hsm_dev_token: DevToken
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    ok_json(_init(home, hsm_dev_token, "--json"))
    for name in ("custody.db", "custody.db-wal", "custody.db-shm"):
        (home / name).touch()
        (home / name).chmod(0o644)  # as an older custody, or a copy, left them
    report = ok_json(_init(home, hsm_dev_token, "--json"))
    assert sorted(report["tightened"]) == [
        "custody.db (was 0644)",
        "custody.db-shm (was 0644)",
        "custody.db-wal (was 0644)",
    ]
    assert _mode(home / "custody.db") == 0o600
    # SQLite removes the -wal and -shm files when its last connection closes
    for name in ("custody.db-wal", "custody.db-shm"):
        assert not (home / name).exists() or _mode(home / name) == 0o600, name
    assert ok_json(_init(home, hsm_dev_token, "--json"))["tightened"] == []
