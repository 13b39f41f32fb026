"""Waking processes on this host as soon as something they wait for happened.

Signers: a request became signable. Watchers (API processes holding long polls,
`GET /v1/requests/{id}?wait=S`): a request changed status.


A signer looks for work every `worker_poll_seconds`; a request approved in an API process would
otherwise wait up to that long. Each supervisor of signer processes (custody.processes) binds one
Unix datagram socket, `CUSTODY_HOME/run/signer-<pid>.sock`, and hands it to its signers; an API
process sends one byte to every such socket it finds. The kernel gives each datagram to one
reader, so one approval wakes one signer, not all of them.

Each API process binds `CUSTODY_HOME/run/watcher-<pid>.sock` of its own, and every committed
status change (but a claim's move to `signing`, which no long poll answers with) sends one
datagram to every watcher socket: each API process must hear every change. The datagram names
the requests whose status the transaction changed, each id in ASCII followed by a newline
(`b"req_a\\nreq_b\\n"`), at most `MAX_DATAGRAM` bytes; the process wakes only the polls waiting
on those ids, so a change costs one status read, not one per waiting poll. Any other datagram
wakes every poll: `WAKE_ALL` (one byte, sent when the ids do not fit), an empty one, one cut
short or that is no such list. The ids are a hint, never data: a woken poll reads its request
from the database.

Best effort by design: a send never blocks and never fails the request. Polling stays the
fallback for everything this misses: processes on other hosts, a full socket buffer, a path too
long for a Unix socket. A signer's full buffer holds wake-ups already; a watcher's holds other
requests' ids, so the process that could not send owes that socket a `WAKE_ALL`, sent with its
next ring (or the polls' own recheck comes first).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import select
import socket
import threading
from collections.abc import Callable, Collection
from enum import StrEnum
from pathlib import Path
from typing import Protocol

log = logging.getLogger("custody.wakeup")

_SUFFIX = ".sock"

# What wakes one signer, or every long poll of a watcher.
WAKE_ALL = b"\x01"
# The largest watcher datagram: about 35 request ids (`req_` and 24 hex digits); a transaction
# changing more wakes every poll instead. Small enough for any Unix socket's buffer.
MAX_DATAGRAM = 1024
# A request id as a datagram carries it: printable ASCII, no space or newline, no longer than
# the column (`requests.id`, 40) and then some. Anything else makes the datagram mean "all".
_REQUEST_ID = re.compile(rb"[!-~]{1,64}")


class Kind(StrEnum):
    """Who a socket wakes: one signer of a supervisor, or every API process's long polls."""

    SIGNER = "signer"
    WATCHER = "watcher"


# The mark a transaction leaves when it changed requests' statuses (`Session.info`): the set of
# their ids. The process wakes their long polls and rings the watchers once it has committed.
STATUS_CHANGED = "custody.request_status_changed"

# Watcher sockets this process could not send a change to (their queue was full): the datagrams
# queued there may name other requests, so its next ring sends them `WAKE_ALL` instead. One ring
# at a time (`_ringing`), so that a debt is kept until paid.
_owed: set[str] = set()
_ringing = threading.Lock()


def run_dir(home: Path) -> Path:
    """Where a running installation keeps its sockets (per host, never backed up)."""
    return home / "run"


def ring(home: Path, kind: Kind = Kind.SIGNER, changed: Collection[str] = ()) -> int:
    """Wake one signer of every supervisor on this host, or every watcher's polls on the
    requests `changed` names (all its polls when it names none); how many sockets took the
    datagram."""
    try:
        entries = [e.path for e in os.scandir(run_dir(home)) if _is_doorbell(e.name, kind)]
    except OSError:
        return 0  # no signer processes here (yet): they poll
    if not entries:
        return 0
    named = watcher_datagram(changed) if kind is Kind.WATCHER else WAKE_ALL
    rung = 0
    with _ringing, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        if kind is Kind.WATCHER:
            _owed.intersection_update(entries)  # forget the sockets gone since
        for path in entries:
            try:
                sock.sendto(WAKE_ALL if path in _owed else named, path)
            except BlockingIOError:
                # Wake-ups queued already: a signer's wake one; a watcher's may name others.
                if kind is Kind.WATCHER:
                    _owed.add(path)
                continue
            except OSError:
                continue  # ECONNREFUSED: a socket its dead supervisor left
            _owed.discard(path)
            rung += 1
    return rung


def watcher_datagram(changed: Collection[str]) -> bytes:
    """The datagram naming the requests `changed`, or `WAKE_ALL` when it names none, one is no
    request id, or they do not fit `MAX_DATAGRAM`."""
    try:
        ids = sorted(request_id.encode("ascii") for request_id in changed)
    except UnicodeEncodeError:
        return WAKE_ALL
    if not ids or not all(_REQUEST_ID.fullmatch(request_id) for request_id in ids):
        return WAKE_ALL
    datagram = b"".join(request_id + b"\n" for request_id in ids)
    return datagram if len(datagram) <= MAX_DATAGRAM else WAKE_ALL


def changed_requests(datagram: bytes) -> frozenset[str] | None:
    """The request ids a watcher datagram names; None for one that names none or cannot be
    read as such a list (every poll wakes)."""
    # No final newline: WAKE_ALL, an empty probe (`_remove_stale`), or a datagram cut short.
    if len(datagram) > MAX_DATAGRAM or not datagram.endswith(b"\n"):
        return None
    ids = datagram[:-1].split(b"\n")
    if not all(_REQUEST_ID.fullmatch(request_id) for request_id in ids):
        return None
    return frozenset(request_id.decode("ascii") for request_id in ids)


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
    """A thread that sets `wake` (a SignerWorker's event) for every datagram `sock` receives."""
    return _listen(sock, lambda _datagram: wake.set(), stop, "this signer polls")


def watch(sock: socket.socket, changes: Changes, stop: threading.Event) -> threading.Thread:
    """A thread that wakes this process's long polls on the requests each datagram `sock`
    receives names (every poll for a datagram that names none)."""
    return _listen(sock, changes.hear, stop, "this process's long polls poll")


def _listen(
    sock: socket.socket, heard: Callable[[bytes], None], stop: threading.Event, fallback: str
) -> threading.Thread:
    def _run() -> None:
        while not stop.is_set():
            try:
                readable, _, _ = select.select([sock], [], [], 0.5)
                if readable:
                    # Another signer sharing the socket may have taken the datagram first. One
                    # byte more than a datagram holds: a longer one reads as cut short (all).
                    heard(sock.recv(MAX_DATAGRAM + 1, socket.MSG_DONTWAIT))
            except BlockingIOError:
                continue
            except OSError:
                # A process that can no longer hear the doorbell still polls: nothing is lost.
                log.warning("wake-up socket failed; %s from now on", fallback, exc_info=True)
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
    """A process's long polls, woken when their request changed status (here or, through its
    watcher socket, in another process).

    A poll takes a `ticket` on its request *before* it reads the status and waits on it after: a
    change that commits in between has set the ticket already, so none is missed. A change wakes
    the polls on the requests it names, and every poll when it cannot say which.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tickets: dict[str, set[_Ticket]] = {}  # by request id

    @property
    def waiting(self) -> int:
        """How many long polls wait now."""
        with self._lock:
            return sum(map(len, self._tickets.values()))

    def ticket(self, request_id: str) -> _Ticket:
        ticket = _Ticket(self, request_id)
        with self._lock:
            self._tickets.setdefault(request_id, set()).add(ticket)
        return ticket

    def changed(self, request_ids: Collection[str] | None) -> None:
        """These requests changed status (None: some did, which is unknown): the tickets waiting
        on them are done (from any thread)."""
        with self._lock:
            if request_ids is None:
                woken = [ticket for tickets in self._tickets.values() for ticket in tickets]
                self._tickets = {}
            else:
                woken = [t for request_id in request_ids for t in self._tickets.pop(request_id, ())]
        for ticket in woken:
            ticket.done()

    def hear(self, datagram: bytes) -> None:
        """A watcher datagram came: a hint of which requests changed, never trusted for more
        (a woken poll reads its request from the database)."""
        self.changed(changed_requests(datagram))

    def _drop(self, ticket: _Ticket) -> None:
        with self._lock:
            tickets = self._tickets.get(ticket.request_id)
            if tickets is not None:
                tickets.discard(ticket)
                if not tickets:
                    del self._tickets[ticket.request_id]


class _Ticket:
    def __init__(self, changes: Changes, request_id: str) -> None:
        self._changes = changes
        self.request_id = request_id
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
