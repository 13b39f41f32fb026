"""Waking processes on this host as soon as something they wait for happened.

Signers: a request became signable. Watchers (API processes holding long polls,
`GET /v1/requests/{id}?wait=S`): a request changed status.


A signer looks for work every `worker_poll_seconds`; a request approved in an API process would
otherwise wait up to that long. Each supervisor of signer processes (custody.processes) binds one
Unix datagram socket, `CUSTODY_HOME/run/signer-<pid>.sock`, and hands it to its signers; an API
process sends one byte to every such socket it finds. The kernel gives each datagram to one
reader, so one approval wakes one signer, not all of them.

Each API process binds `CUSTODY_HOME/run/watcher-<pid>.sock` of its own, and every committed
status change sends one byte to every watcher socket (each API process must hear every change),
but a claim's move to `signing`, which no long poll answers with.

Best effort by design: a send never blocks and never fails the request. Polling stays the
fallback for everything this misses: processes on other hosts, a full socket buffer (wake-ups
are queued already), a path too long for a Unix socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import socket
import threading
from enum import StrEnum
from pathlib import Path
from typing import Protocol

log = logging.getLogger("custody.wakeup")

_SUFFIX = ".sock"


class Kind(StrEnum):
    """Who a socket wakes: one signer of a supervisor, or every API process's long polls."""

    SIGNER = "signer"
    WATCHER = "watcher"


# The mark a transaction leaves when it changed a request's status (`Session.info`): the
# process rings the watchers once it has committed.
STATUS_CHANGED = "custody.request_status_changed"


def run_dir(home: Path) -> Path:
    """Where a running installation keeps its sockets (per host, never backed up)."""
    return home / "run"


def ring(home: Path, kind: Kind = Kind.SIGNER) -> int:
    """Wake one signer of every supervisor on this host (or every watcher); how many sockets
    took the byte."""
    try:
        entries = [e.path for e in os.scandir(run_dir(home)) if _is_doorbell(e.name, kind)]
    except OSError:
        return 0  # no signer processes here (yet): they poll
    if not entries:
        return 0
    rung = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for path in entries:
            # ECONNREFUSED: a socket its dead supervisor left; EAGAIN: wake-ups already queued.
            with contextlib.suppress(OSError):
                sock.sendto(b"\x01", path)
                rung += 1
    return rung


class Doorbell:
    """The socket a supervisor's signers wait on. Bound by the supervisor, inherited by its
    signer processes, removed by the supervisor when it stops."""

    def __init__(self, sock: socket.socket, path: Path) -> None:
        self.sock = sock
        self.path = path

    @classmethod
    def bind(cls, home: Path, kind: Kind = Kind.SIGNER) -> Doorbell | None:
        """None when no socket can be bound here (signers then poll)."""
        folder = run_dir(home)
        path = folder / f"{kind.value}-{os.getpid()}{_SUFFIX}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            _remove_stale(folder, kind)
            path.unlink(missing_ok=True)
            sock.bind(str(path))
        except OSError as exc:
            sock.close()
            # INFO: on a read-only file system with the API elsewhere there is nothing to miss.
            log.info("%ss poll only: no wake-up socket at %s (%s)", kind.value, path, exc)
            return None
        return cls(sock, path)

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)


class _Wakeable(Protocol):
    def set(self) -> None: ...


def relay(sock: socket.socket, wake: _Wakeable, stop: threading.Event) -> threading.Thread:
    """A thread that sets `wake` (a SignerWorker's event, or a process's `Changes`) for every
    datagram `sock` receives."""

    def _run() -> None:
        while not stop.is_set():
            try:
                readable, _, _ = select.select([sock], [], [], 0.5)
                if readable:
                    # Another signer sharing the socket may have taken the datagram first.
                    sock.recv(16, socket.MSG_DONTWAIT)
                    wake.set()
            except BlockingIOError:
                continue
            except OSError:
                # A signer that can no longer hear the doorbell still polls: nothing is lost.
                log.warning("wake-up socket failed; this signer polls from now on", exc_info=True)
                return

    thread = threading.Thread(target=_run, name="wakeup", daemon=True)
    thread.start()
    return thread


def _is_doorbell(name: str, kind: Kind) -> bool:
    return name.startswith(f"{kind.value}-") and name.endswith(_SUFFIX)


def _remove_stale(folder: Path, kind: Kind) -> None:
    """Remove the sockets of supervisors that died without removing theirs: nobody reads them."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
        probe.setblocking(False)
        for entry in os.scandir(folder):
            if not _is_doorbell(entry.name, kind):
                continue
            try:
                probe.sendto(b"", entry.path)
            except ConnectionRefusedError:
                Path(entry.path).unlink(missing_ok=True)
            except OSError:
                pass  # alive but full, or not ours to judge


class Changes:
    """A process's long polls, woken when a request changed status (here or, through its
    watcher socket, in another process).

    A poll takes a `ticket` *before* it reads the status and waits on it after: a change that
    commits in between has set the ticket already, so none is missed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tickets: set[_Ticket] = set()

    @property
    def waiting(self) -> int:
        """How many long polls wait now."""
        with self._lock:
            return len(self._tickets)

    def ticket(self) -> _Ticket:
        ticket = _Ticket(self)
        with self._lock:
            self._tickets.add(ticket)
        return ticket

    def set(self) -> None:
        """Something changed: every waiting ticket is done (from any thread)."""
        with self._lock:
            tickets, self._tickets = self._tickets, set()
        for ticket in tickets:
            ticket.done()

    def _drop(self, ticket: _Ticket) -> None:
        with self._lock:
            self._tickets.discard(ticket)


class _Ticket:
    def __init__(self, changes: Changes) -> None:
        self._changes = changes
        self._loop = asyncio.get_running_loop()
        self._future: asyncio.Future[None] = self._loop.create_future()

    def done(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            self._loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        if not self._future.done():
            self._future.set_result(None)

    async def wait(self, timeout: float) -> bool:
        """Whether a change came within `timeout` seconds."""
        try:
            await asyncio.wait_for(asyncio.shield(self._future), timeout)
        except TimeoutError:
            return False
        finally:
            self.close()
        return True

    def close(self) -> None:
        self._changes._drop(self)
