"""What a client learns when the database cannot be used: a 503 that says when to try again,
and nothing else.

A driver's message names the server's host and port, and sometimes the statement; that is for
the operator (the server log, the command line) and never for an HTTP answer. Every way the
database can be unavailable, whatever the driver calls it, ends here as `DatabaseUnavailable`.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from custody.errors import Unavailable

log = logging.getLogger("custody.store")

# What a client is told, by cause: never a host, a port, a driver's words or a statement.
UNAVAILABLE = "the database is unavailable; try again shortly"
NOT_ANSWERING = "the database is not answering; try again shortly"
TOO_SLOW = "the database did not answer in time; try again shortly"
BUSY = "the database is busy; try again shortly"
# Whole seconds a client should wait: a busy database frees up quickly, an outage takes longer.
RETRY_BUSY_SECONDS = 1
RETRY_OUTAGE_SECONDS = 5

_QUERY_CANCELED = "57014"  # statement_timeout fired (or an operator cancelled the statement)
_LOCK_NOT_AVAILABLE = "55P03"
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


class DatabaseUnavailable(Unavailable):
    title = "Database unavailable"
    slug = "database-unavailable"

    def __init__(
        self,
        message: str = UNAVAILABLE,
        *,
        cause: str = "",
        retry_after: int = RETRY_OUTAGE_SECONDS,
    ) -> None:
        super().__init__(message)
        self.cause = cause
        self.retry_after = retry_after

    def diagnosis(self) -> str:
        return f"{self.message} ({self.cause})" if self.cause else self.message


def unavailable(exc: BaseException, *, not_answering: bool = False) -> DatabaseUnavailable | None:
    """The DatabaseUnavailable an exception from SQLAlchemy means, or None when it means
    something else (a constraint, a bug). The driver's words are logged here, at WARNING."""
    if isinstance(exc, PoolTimeout):
        # Every pooled connection stayed in use for the whole pool timeout.
        return _logged(BUSY, f"no pooled connection free: {exc}", RETRY_BUSY_SECONDS)
    if not isinstance(exc, DBAPIError):
        return None
    if not (isinstance(exc, (OperationalError, InterfaceError)) or exc.connection_invalidated):
        return None
    orig = exc.orig
    cause = f"{type(orig).__name__}: {_first_line(orig)}"
    if not_answering:
        return _logged(NOT_ANSWERING, cause, RETRY_OUTAGE_SECONDS)
    sqlstate = getattr(orig, "sqlstate", None) or ""
    if sqlstate == _QUERY_CANCELED:
        message, retry_after = TOO_SLOW, RETRY_OUTAGE_SECONDS
    elif sqlstate.startswith("40") or sqlstate == _LOCK_NOT_AVAILABLE or _sqlite_busy(orig):
        # Serialization failures, deadlocks, lock waits, SQLite's busy timeout: contention.
        message, retry_after = BUSY, RETRY_BUSY_SECONDS
    else:
        message, retry_after = UNAVAILABLE, RETRY_OUTAGE_SECONDS
    return _logged(message, cause, retry_after)


def _logged(message: str, cause: str, retry_after: int) -> DatabaseUnavailable:
    log.warning("database unavailable: %s", cause)
    return DatabaseUnavailable(message, cause=cause, retry_after=retry_after)


def _sqlite_busy(orig: BaseException | None) -> bool:
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return int(code) & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)  # extended codes keep the base
    return "locked" in str(orig)


def _first_line(orig: BaseException | None) -> str:
    text = str(orig).strip() if orig is not None else ""
    return text.splitlines()[0] if text else "no detail"
