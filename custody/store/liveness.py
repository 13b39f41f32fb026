"""Noticing, within seconds, a PostgreSQL server that stopped answering.

A frozen server (its processes stopped, its disk hung) keeps its connections open: the kernel
of its host still acknowledges every packet, so neither TCP keepalives nor `tcp_user_timeout`
notice, and `statement_timeout` runs on the server's clock, which is frozen too. A database call
then waits for as long as the freeze lasts, holding its thread, its pooled connection and an
HTTP request, and `custody serve` cannot stop while it waits.

So custody watches from its own side. When a database block has run longer than `seconds`, a
watchdog thread asks the server for `SELECT 1` on a fresh connection. An answer means the
server is only slow, and the statement timeout bounds what it does. No answer within `seconds`
means it is not answering: the socket of every connection this process holds to it is shut
down, so each waiting call fails at once as a disconnect (503), and new blocks are refused at
once (`down`) until a probe is answered again. Recovery needs no restart: the pool replaces the
cut connections on their next use (pre-ping).

A probe that gets an error (connection refused, too many clients) is an answer of a kind: the
server, or its host, is alive enough to refuse, and calls on open connections fail by themselves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

log = logging.getLogger("custody.store")


@dataclass(frozen=True)
class Verdict:
    """What one probe found: an answer, an error (`cause`), or silence (no answer in time)."""

    answered: bool
    silent: bool = False
    cause: str = ""


ANSWERED = Verdict(answered=True)


def silence(seconds: float) -> Verdict:
    return Verdict(answered=False, silent=True, cause=f"no answer within {seconds:g} s")


class _Run:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.verdict = ANSWERED
        self.finished = 0.0


class Probe:
    """Runs `attempt` in a thread of its own, one at a time, and tells each caller what it found
    within the caller's own wait. A probe still running is joined, never started again, so a
    server that hangs costs one thread however often it is asked; a verdict younger than
    `fresh_seconds` is reused (unless forgotten: a call failed since), so a flood of readiness
    checks is not a flood of connections."""

    def __init__(self, attempt: Callable[[], None], *, fresh_seconds: float = 0.5) -> None:
        self._attempt = attempt
        self._fresh = fresh_seconds
        self._lock = threading.Lock()
        self._running: _Run | None = None
        self._last: _Run | None = None

    def run(self, wait: float, *, reuse: bool = True) -> Verdict:
        """What a probe finds within `wait` seconds; `reuse=False` ignores an earlier verdict."""
        with self._lock:
            last = self._last
            if reuse and last is not None and time.monotonic() - last.finished < self._fresh:
                return last.verdict
            run = self._running
            if run is None:
                run = self._running = _Run()
                thread = threading.Thread(target=self._probe, args=(run,), name="db-probe")
                thread.daemon = True  # one stuck in a driver must not keep the process alive
                thread.start()
        return run.verdict if run.done.wait(wait) else silence(wait)

    def forget(self) -> None:
        """Reuse no earlier verdict: the database just failed a call."""
        with self._lock:
            self._last = None

    def _probe(self, run: _Run) -> None:
        try:
            self._attempt()
        except Exception as exc:
            orig = getattr(exc, "orig", None) or exc
            silent = isinstance(orig, psycopg.errors.ConnectionTimeout)
            lines = str(orig).strip().splitlines()
            cause = f"{type(orig).__name__}: {lines[0] if lines else 'no detail'}"
            run.verdict = Verdict(answered=False, silent=silent, cause=cause)
        run.finished = time.monotonic()
        with self._lock:
            self._running, self._last = None, run
        run.done.set()


class Connections:
    """Every live connection to the server, with the peer its socket was connected to."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def add(self, dbapi_connection: Any, _record: object = None) -> None:
        """A pool `connect` listener."""
        with contextlib.suppress(OSError, psycopg.Error), _socket_of(dbapi_connection) as sock:
            peer = sock.getpeername()
            with self._lock:
                self._live[dbapi_connection] = peer

    def cut(self) -> int:
        """Shut down the socket of every open connection: a call waiting on one fails at once.
        A descriptor that no longer leads to the same peer (closed and reused) is left alone."""
        with self._lock:
            live = list(self._live.items())
        cut = 0
        for connection, peer in live:
            with contextlib.suppress(OSError, psycopg.Error):
                if connection.closed:
                    continue
                with _socket_of(connection) as sock:
                    if sock.getpeername() == peer:
                        sock.shutdown(socket.SHUT_RDWR)
                        cut += 1
        return cut


def _socket_of(connection: Any) -> socket.socket:
    """A socket object on a duplicate of the connection's descriptor: closing it leaves the
    connection's own descriptor open, while `shutdown` acts on the shared socket."""
    return socket.socket(fileno=os.dup(connection.fileno()))


class Liveness:
    """The watchdog of one engine: tracks the blocks in progress, probes when one is stuck."""

    def __init__(self, probe: Probe, connections: Connections, seconds: float) -> None:
        self.probe = probe
        self.connections = connections
        self.seconds = seconds
        self._lock = threading.Lock()
        self._blocks: dict[int, float] = {}
        self._next = 0
        self._down_since: float | None = None
        self._last_probe = 0.0
        self._pid: int | None = None
        self._stop = threading.Event()

    @property
    def down(self) -> bool:
        """The server did not answer the last probe, and none was answered since."""
        return self._down_since is not None

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        """Mark a database block in progress for as long as the `with` lasts."""
        self._ensure_watchdog()
        with self._lock:
            key, self._next = self._next, self._next + 1
            self._blocks[key] = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                self._blocks.pop(key, None)

    def close(self) -> None:
        """Stop the watchdog (a later block starts a new one)."""
        with self._lock:
            self._stop.set()
            self._pid = None

    def _ensure_watchdog(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            # A forked child has none of its parent's threads or blocks in progress.
            self._pid, self._blocks, self._down_since = os.getpid(), {}, None
            self._stop = stop = threading.Event()
        threading.Thread(target=self._watch, args=(stop,), name="db-liveness", daemon=True).start()

    def _watch(self, stop: threading.Event) -> None:
        tick = min(0.25, self.seconds / 4)
        while not stop.wait(tick):
            try:
                self._check()
            except Exception:  # the watchdog must outlive anything a check runs into
                log.exception("database liveness check failed")

    def _check(self) -> None:
        now = time.monotonic()
        if self._down_since is not None:
            verdict = self.probe.run(self.seconds, reuse=False)
            if verdict.answered:
                log.warning(
                    "database answers again after %.1f s", time.monotonic() - self._down_since
                )
                self._down_since = None
            elif verdict.silent:
                self.connections.cut()  # any connection opened meanwhile waits in vain too
            return
        with self._lock:
            oldest = min(self._blocks.values(), default=None)
        if oldest is None or now - oldest < self.seconds or now - self._last_probe < self.seconds:
            return
        self._last_probe = now
        verdict = self.probe.run(self.seconds, reuse=False)
        if verdict.answered or not verdict.silent:
            return  # slow, not frozen (or refusing, which waiting calls will learn themselves)
        self._down_since = time.monotonic()
        cut = self.connections.cut()
        log.warning(
            "database not answering (%s); cut %d connections, refusing database work until it "
            "answers again",
            verdict.cause,
            cut,
        )
