"""What every child process does first, and how the supervisor names what to start."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from custody import tracing
from custody.processes import logs, orphans
from custody.settings import Settings


@dataclass(frozen=True)
class ChildSpec:
    """One child the supervisor keeps running: `target(*args)` in a process of its own.

    `last`: stopped only once the others have stopped (the background process, whose final
    checkpoint must cover whatever the API and the signers wrote while they stopped).
    """

    role: str
    target: Callable[..., None]
    args: tuple[object, ...]
    last: bool = False


def enter(role: str, settings: Settings, parent: int) -> None:
    """Log as `role`, trace as `role` when tracing is on (custody.tracing; the supervisor
    checked at start-up that it can run), and stop when the supervisor (`parent`) is gone.
    A child calls `leave` when it returns."""
    logs.configure(role, settings.log_format)
    tracing.start(role, settings.tracing)
    orphans.stop_with_parent(parent, grace=settings.shutdown_timeout_seconds)


def leave() -> None:
    """Export the spans still buffered: a child returns through multiprocessing, which exits
    without running atexit handlers (the SDK's own flush is one)."""
    tracing.stop()


def stop_on_signals(*events: threading.Event) -> None:
    """SIGTERM (from the supervisor) and SIGINT (Ctrl-C reaches the whole process group) set
    `events`: the child finishes what it is doing and returns."""

    def _stop(_signum: int, _frame: object) -> None:
        for event in events:
            event.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
