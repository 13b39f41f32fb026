"""Engines and the unit of work. Services never commit: the caller of `write()` owns the
transaction, so a state change and its ledger entry commit together or not at all.

SQLite runs in WAL mode and every write transaction starts with `BEGIN IMMEDIATE`: taking the
write lock up front avoids the deadlock of two readers that both try to upgrade, and serialises
writers the way PostgreSQL's row locks do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
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

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalise_url(url)
        self.sqlite = is_sqlite(self.url)
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.sqlite:
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
        self._writes = sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        self._reads = sessionmaker(self._read_engine, expire_on_commit=False, autoflush=False)

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
