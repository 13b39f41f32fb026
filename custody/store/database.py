"""Engines and the unit of work. Services never commit: the caller of `write()` owns the
transaction, so a state change and its ledger entry commit together or not at all.

SQLite runs in WAL mode and every write transaction starts with `BEGIN IMMEDIATE`: taking the
write lock up front avoids the deadlock of two readers that both try to upgrade, and serialises
writers the way PostgreSQL's row locks do.

A SQLite database holds everything but the keys (requests, approvers, the ledger) and is made
readable by its owner only: SQLite would create it 0644, whatever the folder around it allows,
and gives its -wal and -shm files the database file's mode.

Every wait on the database is bounded (docs/reliability.md): connecting (`connect_timeout`), a
statement (PostgreSQL's `statement_timeout`; SQLite's busy timeout for its write lock), a free
pooled connection (`pool_timeout`), and a server that stopped answering altogether
(custody.store.liveness). Whatever the cause, the caller gets `DatabaseUnavailable`: a 503 with
`Retry-After` and no word of the driver's (custody.store.errors).
"""

from __future__ import annotations

import math
import os
import sqlite3
import stat
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool, QueuePool

from custody.store.errors import (
    BUSY,
    NOT_ANSWERING,
    RETRY_BUSY_SECONDS,
    DatabaseUnavailable,
    unavailable,
)
from custody.store.liveness import Connections, Liveness, Probe

__all__ = ["Database", "DatabaseTimeouts", "DatabaseUnavailable"]

# TCP keepalives on every PostgreSQL connection: a server whose host vanished (powered off, cut
# off by a firewall that drops packets silently) is noticed on an idle pooled connection within
# about 25 s instead of the kernel's two hours. (A server that is frozen while its host is up
# still acknowledges them: custody.store.liveness notices that one.)
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


# A process's PostgreSQL connections when nobody shares them out (custody.processes does): a third
# kept open, the rest opened under load and closed again.
DEFAULT_CONNECTIONS = 30


def pool_sizes(connections: int) -> tuple[int, int]:
    """(pool_size, max_overflow) for at most `connections` at once, one kept for the liveness
    probe's own connection."""
    pooled = max(1, connections - 1)
    kept = max(1, pooled // 3)
    return kept, pooled - kept


@dataclass(frozen=True)
class DatabaseTimeouts:
    """How long custody waits on its database; the settings `database_*_seconds` (the defaults
    are theirs). SQLite has no server to wait for: only its busy timeout applies there."""

    connect_seconds: int = 5
    statement_seconds: float = 30.0  # 0: no limit
    pool_seconds: float = 5.0
    liveness_seconds: float = 2.0
    sqlite_busy_seconds: float = 30.0
    connections: int = DEFAULT_CONNECTIONS
    """PostgreSQL: the most connections this process opens, its liveness probe's included."""


def postgres_connect_args(
    url: str, timeouts: DatabaseTimeouts, *, statement_seconds: float | None = None
) -> dict[str, Any]:
    """psycopg's connection parameters for these timeouts. `statement_seconds` overrides the
    statement timeout (0: none, as migrations need: one migration may rewrite a large table).
    What the URL sets itself wins, except `options`, to which the statement timeout is added."""
    query = make_url(url).query
    args: dict[str, Any] = {"connect_timeout": timeouts.connect_seconds, **KEEPALIVES}
    args = {name: value for name, value in args.items() if name not in query}
    limit = timeouts.statement_seconds if statement_seconds is None else statement_seconds
    if limit > 0:
        given = query.get("options")
        own = f"-c statement_timeout={math.ceil(limit * 1000)}"
        args["options"] = f"{given} {own}" if isinstance(given, str) and given else own
    return args


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


class _TrackedConnection(sqlite3.Connection):
    """A SQLite connection that can reset every statement it still has open.

    An error raised while a result is open leaves its statement un-reset for as long as
    anything references the traceback (a log record, an error reporter, a reference cycle), and
    in WAL mode that statement holds the connection's snapshot even after COMMIT: a pooled
    connection would serve the database as it was. Closing the cursors when the connection goes
    back to the pool ends that snapshot, whoever still holds them.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cursors: weakref.WeakSet[sqlite3.Cursor] = weakref.WeakSet()

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        cursor = super().cursor(*args, **kwargs)
        self._cursors.add(cursor)
        return cursor

    def close_cursors(self) -> None:
        for cursor in list(self._cursors):
            cursor.close()


def _close_open_cursors(dbapi_conn: Any, _record: Any) -> None:
    if isinstance(dbapi_conn, _TrackedConnection):
        dbapi_conn.close_cursors()


# Pooled SQLite read connections: a fresh connection costs its PRAGMAs and a parse of the
# schema on its first statement (about 2 ms, several times per API call); an idle one in the
# pool costs a file handle. Never a wait for one: past these, reads open more, as NullPool did.
SQLITE_READ_POOL_SIZE = 16


def _configure_sqlite(engine: Engine, *, immediate: bool, busy_seconds: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own transaction handling is replaced by explicit BEGINs below.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # A writer waits this long for the write lock, then fails with "database is locked",
        # which custody answers as a busy database (503, Retry-After).
        cursor.execute(f"PRAGMA busy_timeout={math.ceil(busy_seconds * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """One installation's database: a write engine and a read engine over the same URL."""

    def __init__(
        self, url: str, *, echo: bool = False, timeouts: DatabaseTimeouts | None = None
    ) -> None:
        self.url = normalise_url(url)
        self.sqlite = is_sqlite(self.url)
        self.timeouts = timeouts = timeouts or DatabaseTimeouts()
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.sqlite:
            create_private(self.url)
            # A pooled connection is waited for as long as SQLAlchemy's default (30 s), like the
            # write lock: both are waits for the writer ahead.
            busy = timeouts.sqlite_busy_seconds
            kwargs["connect_args"] = {
                "check_same_thread": False,
                "timeout": busy,
                "factory": _TrackedConnection,
            }
        else:
            kept, overflow = pool_sizes(timeouts.connections)
            kwargs.update(
                pool_pre_ping=True,
                pool_size=kept,
                max_overflow=overflow,
                pool_timeout=timeouts.pool_seconds,
                connect_args=postgres_connect_args(self.url, timeouts),
            )
        self.engine = create_engine(self.url, **kwargs)
        self._read_engine = (
            create_engine(
                self.url,
                poolclass=QueuePool,
                pool_size=SQLITE_READ_POOL_SIZE,
                max_overflow=-1,
                **kwargs,
            )
            if self.sqlite
            else self.engine
        )
        if self.sqlite:
            _configure_sqlite(self.engine, immediate=True, busy_seconds=busy)
            _configure_sqlite(self._read_engine, immediate=False, busy_seconds=busy)
            # A pooled connection whose failed read left a statement open (held by a
            # traceback) would keep serving its old snapshot: its cursors close on return.
            for pooled in (self.engine, self._read_engine):
                event.listen(pooled, "checkin", _close_open_cursors)
        # SQLite: this process's writers queue here, each woken the moment the one ahead ends.
        # Left to meet at SQLite's write lock, they sleep in its busy handler (1 ms, growing to
        # 100 ms, whatever happens meanwhile) and leave the lock idle between them. Writers of
        # other processes (the signer, the CLI) still meet this one there.
        self._writer_turn = threading.Lock() if self.sqlite else None
        self._writes = sessionmaker(self.engine, expire_on_commit=False, autoflush=True)
        self._reads = sessionmaker(self._read_engine, expire_on_commit=False, autoflush=False)
        self.commit_hooks: list[Callable[[Session], None]] = []
        """Run at the end of every write block, inside its transaction, before it commits (the
        configuration seal, custody.seals.hooks): what they write commits with the block or not
        at all."""
        self._probe_engine: Engine | None = None
        self.liveness: Liveness | None = None
        if self.sqlite:
            self._probe = Probe(self._sqlite_select_one)
        else:
            self._probe, self.liveness = self._watch_postgres(timeouts)

    def _watch_postgres(self, timeouts: DatabaseTimeouts) -> tuple[Probe, Liveness]:
        """The liveness probe: `SELECT 1` on a fresh connection of its own, bounded on the
        server too, and the watchdog that uses it (custody.store.liveness)."""
        seconds = timeouts.liveness_seconds
        bounded = DatabaseTimeouts(connect_seconds=max(2, math.ceil(seconds)))
        self._probe_engine = create_engine(
            self.url,
            poolclass=NullPool,
            connect_args=postgres_connect_args(self.url, bounded, statement_seconds=seconds),
        )
        connections = Connections()
        event.listen(self.engine, "connect", connections.add)
        event.listen(self._probe_engine, "connect", connections.add)
        probe = Probe(self._postgres_select_one)
        liveness = Liveness(probe, connections, seconds)

        @event.listens_for(self.engine, "do_connect")
        def _not_while_down(*_args: object) -> None:
            # A call whose connection was cut would otherwise reconnect at once (pre-ping) and
            # wait the whole connect timeout on a server known not to answer.
            if liveness.down:
                raise DatabaseUnavailable(NOT_ANSWERING, cause="the liveness probe has no answer")

        return probe, liveness

    def _postgres_select_one(self) -> None:
        assert self._probe_engine is not None
        with self._probe_engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def _sqlite_select_one(self) -> None:
        with self.read() as session:
            session.execute(text("SELECT 1"))

    @property
    def write_sessions(self) -> sessionmaker[Session]:
        """The factory of write sessions, for session event listeners."""
        return self._writes

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits when the block ends and rolls back on any exception."""
        with self._bounded(), self._turn(), self._writes() as session, session.begin():
            yield session
            for hook in self.commit_hooks:
                hook(session)

    @contextmanager
    def _turn(self) -> Iterator[None]:
        """This process's turn to write (SQLite), waited for as long as SQLite's own lock."""
        turn = self._writer_turn
        if turn is None:
            yield
            return
        if not turn.acquire(timeout=self.timeouts.sqlite_busy_seconds):
            seconds = self.timeouts.sqlite_busy_seconds
            raise DatabaseUnavailable(
                BUSY,
                cause=f"another write of this process held SQLite's write lock for {seconds:g} s",
                retry_after=RETRY_BUSY_SECONDS,
            )
        try:
            yield
        finally:
            turn.release()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._bounded(), self._reads() as session, session.begin():
            yield session

    def unanswered(self, wait: float) -> str | None:
        """None when the database answers `SELECT 1` within `wait` seconds; otherwise why not,
        in words fit for a client (the readiness check). Never waits longer, whatever the
        server does: the probe runs in a thread of its own."""
        if self.liveness is not None and self.liveness.down:
            return "not answering"
        verdict = self._probe.run(wait)
        if verdict.answered:
            return None
        return f"no answer within {wait:g} s" if verdict.silent else "unavailable"

    @contextmanager
    def _bounded(self) -> Iterator[None]:
        """Refuse at once while the server is known not to answer; watch the block otherwise;
        turn every way the database can be unavailable into DatabaseUnavailable."""
        liveness = self.liveness
        if liveness is not None and liveness.down:
            raise DatabaseUnavailable(NOT_ANSWERING, cause="the liveness probe has no answer")
        try:
            with liveness.watch() if liveness is not None else nullcontext():
                yield
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            mapped = unavailable(exc, not_answering=liveness is not None and liveness.down)
            if mapped is None:
                raise
            self._probe.forget()  # the readiness check must not report an older success
            raise mapped from exc

    def dispose(self) -> None:
        if self.liveness is not None:
            self.liveness.close()
        self.engine.dispose()
        if self._read_engine is not self.engine:
            self._read_engine.dispose()
        if self._probe_engine is not None:
            self._probe_engine.dispose()
