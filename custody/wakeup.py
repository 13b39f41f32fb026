"""Waking signer processes on this host as soon as a request becomes signable.

A signer looks for work every `worker_poll_seconds`; a request approved in an API process would
otherwise wait up to that long. Each supervisor of signer processes (custody.processes) binds one
Unix datagram socket, `CUSTODY_HOME/run/signer-<pid>.sock`, and hands it to its signers; an API
process sends one byte to every such socket it finds. The kernel gives each datagram to one
reader, so one approval wakes one signer, not all of them.

Best effort by design: a send never blocks and never fails the request. Polling stays the
fallback for everything this misses: signers on other hosts, a full socket buffer (the signers
have wake-ups queued already), a path too long for a Unix socket.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
from pathlib import Path

log = logging.getLogger("custody.wakeup")

_PREFIX, _SUFFIX = "signer-", ".sock"


def run_dir(home: Path) -> Path:
    """Where a running installation keeps its sockets (per host, never backed up)."""
    return home / "run"


def ring(home: Path) -> int:
    """Wake one signer of every supervisor on this host; how many sockets took the byte."""
    try:
        entries = [e.path for e in os.scandir(run_dir(home)) if _is_doorbell(e.name)]
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
    def bind(cls, home: Path) -> Doorbell | None:
        """None when no socket can be bound here (signers then poll)."""
        folder = run_dir(home)
        path = folder / f"{_PREFIX}{os.getpid()}{_SUFFIX}"
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            _remove_stale(folder)
            path.unlink(missing_ok=True)
            sock.bind(str(path))
        except OSError as exc:
            sock.close()
            # INFO: on a read-only file system with the API elsewhere there is nothing to miss.
            log.info("signers poll only: no wake-up socket at %s (%s)", path, exc)
            return None
        return cls(sock, path)

    def close(self) -> None:
        self.sock.close()
        self.path.unlink(missing_ok=True)


def relay(sock: socket.socket, wake: threading.Event, stop: threading.Event) -> threading.Thread:
    """A thread that sets `wake` (a SignerWorker's) for every datagram `sock` receives."""

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


def _is_doorbell(name: str) -> bool:
    return name.startswith(_PREFIX) and name.endswith(_SUFFIX)


def _remove_stale(folder: Path) -> None:
    """Remove the sockets of supervisors that died without removing theirs: nobody reads them."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
        probe.setblocking(False)
        for entry in os.scandir(folder):
            if not _is_doorbell(entry.name):
                continue
            try:
                probe.sendto(b"", entry.path)
            except ConnectionRefusedError:
                Path(entry.path).unlink(missing_ok=True)
            except OSError:
                pass  # alive but full, or not ours to judge
