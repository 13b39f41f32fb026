"""Engines and the unit of work. Services never commit: the caller of `write()` owns the
transaction, so a state change and its ledger entry commit together or not at all.

SQLite runs in WAL mode and every write transaction starts with `BEGIN IMMEDIATE`: taking the
write lock up front avoids the deadlock of two readers that both try to upgrade, and serialises
writers the way PostgreSQL's row locks do.

A SQLite database holds everything but the keys (requests, approvers, the ledger) and is made
readable by its owner only: SQLite would create it 0644, whatever the folder around it allows,
and gives its -wal and -shm files the database file's mode.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from custody.errors import Unavailable

SQLITE_BUSY_TIMEOUT_MS = 30_000


class DatabaseUnavailable(Unavailable):
    title = "Database unavailable"
    slug = "database-unavailable"


def normalise_url(url: str) -> str:
    """Accept the usual `postgresql://` spelling and use the psycopg 3 driver for it."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def database_key(session: Session) -> str:
    """Names the database a session talks to (password hidden), for per-database caches: one
    process may serve several databases, and row ids mean different rows in each."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    return engine.url.render_as_string(hide_password=True)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


PRIVATE_MODE = 0o600
# The files SQLite keeps next to a database, all as readable as the database itself.
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other databases and in-memory ones."""
    if not is_sqlite(url):
        return None
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def create_private(url: str) -> None:
    """Create a SQLite database file (empty is a valid database) for its owner only, before
    SQLite would create it with its default mode. An existing file is left as it is."""
    path = sqlite_file(url)
    if path is None:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_MODE)
    except (FileExistsError, FileNotFoundError):
        return  # there already, or no folder for it: SQLite reports that in its own words
    os.close(fd)


def tighten_private(url: str) -> list[tuple[Path, int]]:
    """Make an existing SQLite database and its companion files owner-only; returns each file
    changed with its former mode. Links are left alone: they are not ours to change."""
    path = sqlite_file(url)
    if path is None:
        return []
    changed = []
    for suffix in SQLITE_COMPANIONS:
        candidate = path.with_name(path.name + suffix)
        try:
            mode = candidate.lstat().st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISREG(mode) and stat.S_IMODE(mode) & ~PRIVATE_MODE:
            candidate.chmod(PRIVATE_MODE)
            changed.append((candidate, stat.S_IMODE(mode)))
    return changed


def _configure_sqlite(engine: Engine, *, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own transaction handling is replaced by explicit BEGINs below.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """One installation's database: a write engine and a read engine over the same URL."""

    def __init__(
        self, url: str, *, echo: bool = False, session_info: Mapping[str, object] | None = None
    ) -> None:
        """`session_info`: what every session opened here carries in `Session.info` (the
        runtime puts there what code handed only a session must know, such as the relying
        party the signer checks passkey approvals against)."""
        self.url = normalise_url(url)
        self.sqlite = is_sqlite(self.url)
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.sqlite:
            create_private(self.url)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
        self.engine = create_engine(self.url, **kwargs)
        # SQLite reads get a fresh connection each time: a pooled one whose failed read left a
        # statement open (held by a traceback) would keep serving its old snapshot.
        self._read_engine = (
            create_engine(self.url, poolclass=NullPool, **kwargs) if self.sqlite else self.engine
        )
        if self.sqlite:
            _configure_sqlite(self.engine, immediate=True)
            _configure_sqlite(self._read_engine, immediate=False)
        info = dict(session_info or {})
        self._writes = sessionmaker(self.engine, expire_on_commit=False, autoflush=True, info=info)
        self._reads = sessionmaker(
            self._read_engine, expire_on_commit=False, autoflush=False, info=info
        )

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits when the block ends and rolls back on any exception."""
        with self._wrap_operational(), self._writes() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._wrap_operational(), self._reads() as session, session.begin():
            yield session

    @contextmanager
    def _wrap_operational(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            # The driver's text can include connection details; keep the first line only.
            detail = str(exc.orig).splitlines()[0] if exc.orig else "operational error"
            raise DatabaseUnavailable(f"database unavailable: {detail}") from exc

    def dispose(self) -> None:
        self.engine.dispose()
        if self._read_engine is not self.engine:
            self._read_engine.dispose()
