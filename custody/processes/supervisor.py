"""The supervisor: starts the children, restarts one that dies, stops them all on SIGTERM.

It holds no database connection and no HSM session, and does nothing that could block: whatever
stalls (an HSM call, a database) stalls in a child, and the supervisor still restarts, stops and
kills on time.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

from custody.processes.backoff import STABLE_SECONDS, Backoff
from custody.processes.children import ChildSpec

log = logging.getLogger("custody.processes")

# A PKCS#11 library must be initialised in the process that uses it, never inherited across a
# fork. Children are forked by a fork server: a fresh interpreter, started once, that imports
# the children's code (`PRELOAD`) and never touches the HSM or the database. A child (or its
# restart) then starts in milliseconds instead of a second of imports, with nothing inherited
# but modules.
_CONTEXT = multiprocessing.get_context("forkserver")
PRELOAD = [
    "custody.app",
    "custody.processes.api",
    "custody.processes.background",
    "custody.processes.signer",
    "custody.signing.worker",
    "custody.ledger.checkpointer",
    "custody.webhooks.runner",
    "custody.http.serving",
]
_CONTEXT.set_forkserver_preload(PRELOAD)
# The first group stops within the bound less this (at most), the rest in what is left.
_LAST_GROUP_RESERVE = 5.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_REAP_SECONDS = 2.0


@dataclass
class _Child:
    spec: ChildSpec
    process: BaseProcess | None = None
    started: float = 0.0
    deaths_in_a_row: int = 0
    restart_at: float | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.exitcode is None


class Supervisor:
    def __init__(
        self, specs: Sequence[ChildSpec], *, shutdown_timeout: float, backoff: Backoff
    ) -> None:
        self._children = [_Child(spec) for spec in specs]
        self._shutdown_timeout = shutdown_timeout
        self._backoff = backoff
        self._signals: list[int] = []

    def pids(self) -> dict[str, int | None]:
        return {c.spec.role: c.process.pid if c.process else None for c in self._children}

    def run(self) -> int:
        """Supervise until SIGTERM or SIGINT; 0 when every child then stopped within the bound."""
        with self._stop_signals() as woken:
            for child in self._children:
                self._start(child)
            while not self._signals:
                self._wait(woken)
                self._reap()
                self._restart_due()
            log.info("%s: stopping all processes", signal.Signals(self._signals[0]).name)
            return self._stop_all(woken)

    # -- running -------------------------------------------------------------------------------

    def _start(self, child: _Child) -> None:
        child.restart_at = None
        process = _CONTEXT.Process(
            target=child.spec.target, args=child.spec.args, name=child.spec.role, daemon=False
        )
        try:
            process.start()
        except Exception:
            log.exception("%s could not be started", child.spec.role)
            child.process = None
            self._schedule_restart(child, ran_for=0.0)
            return
        child.process, child.started = process, time.monotonic()
        log.info("%s started (pid %d)", child.spec.role, process.pid)

    def _wait(self, woken: socket.socket) -> None:
        """Until a child exits, a restart is due or a signal arrives."""
        due = [c.restart_at for c in self._children if c.restart_at is not None]
        timeout = max(0.0, min(due) - time.monotonic()) if due else None
        # Every child not yet reaped, dead or alive: a dead one's sentinel is ready at once.
        # (Asking whether it still runs would reap it, and then nothing would wake the wait.)
        sentinels = [c.process.sentinel for c in self._children if c.process is not None]
        ready = wait([*sentinels, woken], timeout)
        if woken in ready:
            _drain(woken)

    def _reap(self) -> None:
        for child in self._children:
            process = child.process
            if process is None or process.exitcode is None:
                continue
            ran_for = time.monotonic() - child.started
            log.error(
                "%s (pid %d) %s after %.1f s",
                child.spec.role,
                process.pid,
                _describe(process.exitcode),
                ran_for,
            )
            process.close()
            child.process = None
            self._schedule_restart(child, ran_for)

    def _schedule_restart(self, child: _Child, ran_for: float) -> None:
        if ran_for >= STABLE_SECONDS:
            child.deaths_in_a_row = 0
        child.deaths_in_a_row += 1
        delay = self._backoff.delay(child.deaths_in_a_row)
        child.restart_at = time.monotonic() + delay
        if child.deaths_in_a_row == 1:
            log.warning("%s restarts in %.1f s", child.spec.role, delay)
        else:
            log.error(
                "%s restarts in %.1f s (it stopped %d times in a row within %.0f s of starting)",
                child.spec.role,
                delay,
                child.deaths_in_a_row,
                STABLE_SECONDS,
            )

    def _restart_due(self) -> None:
        now = time.monotonic()
        for child in self._children:
            if child.restart_at is not None and child.restart_at <= now:
                self._start(child)

    # -- stopping ------------------------------------------------------------------------------

    def _stop_all(self, woken: socket.socket) -> int:
        deadline = time.monotonic() + self._shutdown_timeout
        first = [c for c in self._children if not c.spec.last]
        last = [c for c in self._children if c.spec.last]
        reserve = min(_LAST_GROUP_RESERVE, self._shutdown_timeout / 3) if last else 0.0
        killed = self._stop(first, deadline - reserve, woken) + self._stop(last, deadline, woken)
        if killed:
            log.error(
                "not stopped within %g s, killed: %s", self._shutdown_timeout, ", ".join(killed)
            )
            return 1
        log.info("all processes stopped")
        return 0

    def _stop(self, group: list[_Child], until: float, woken: socket.socket) -> list[str]:
        """SIGTERM, then SIGKILL at `until` (or at a second stop signal); who had to be killed."""
        for child in group:
            child.restart_at = None
            if child.running and child.process:
                child.process.terminate()
        running = [c for c in group if c.running]
        # A second stop signal (Ctrl-C again) means: now.
        while running and time.monotonic() < until and len(self._signals) < 2:
            sentinels = [c.process.sentinel for c in running if c.process]
            if woken in wait([*sentinels, woken], max(0.0, until - time.monotonic())):
                _drain(woken)
            running = [c for c in group if c.running]
        for child in running:
            if child.process:
                child.process.kill()
        for child in group:
            process = child.process
            if process is None:
                continue
            # Bounded even now: a process in uninterruptible sleep (a hung driver) dies only
            # when the kernel lets it, and the supervisor does not wait for that.
            process.join(_REAP_SECONDS)
            if process.exitcode is None:
                log.error("%s (pid %d) did not die when killed", child.spec.role, process.pid)
                continue
            if process.exitcode != 0 and child not in running:
                log.warning("%s %s", child.spec.role, _describe(process.exitcode))
            process.close()
            child.process = None
        return [c.spec.role for c in running]

    @contextmanager
    def _stop_signals(self) -> Iterator[socket.socket]:
        """Stop signals are recorded and wake the loop through a socket pair: the handler does
        no work of its own, so it cannot run into the middle of a start or a stop."""
        woken, waker = socket.socketpair()
        waker.setblocking(False)
        previous_fd = signal.set_wakeup_fd(waker.fileno())
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            yield woken
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_fd)
            woken.close()
            waker.close()

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals.append(signum)


def _drain(sock: socket.socket) -> None:
    sock.setblocking(False)
    try:
        while sock.recv(64):
            pass
    except BlockingIOError:
        pass


def _describe(exitcode: int) -> str:
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"
