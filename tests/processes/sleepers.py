"""Tiny children whose behaviour a test chooses, under custody's real Supervisor, in a process of
their own: `python -m tests.processes.sleepers SCENARIO MARKS_DIR SHUTDOWN_TIMEOUT`.

They import nothing of custody but the supervisor, so a scenario starts in a fraction of a second
and the supervisor's restart, stop-order and kill rules can be watched without an HSM. Each child
writes what happened to it as files in MARKS_DIR (`<role>.ready`: its SIGTERM handler is in
place, `<role>.term`: when SIGTERM arrived, `<role>.stopped`: when it finished stopping).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from custody.processes import logs
from custody.processes.backoff import Backoff
from custody.processes.children import ChildSpec
from custody.processes.supervisor import Supervisor

CRASH_EXIT = 3


def _mark(marks: str, name: str) -> None:
    (Path(marks) / name).write_text(repr(time.time()))


def steady(role: str, marks: str, stop_seconds: float) -> None:
    """Runs until SIGTERM, then takes `stop_seconds` to stop."""
    logs.configure(role)
    stopped = threading.Event()

    def _term(_signum: int, _frame: object) -> None:
        _mark(marks, f"{role}.term")
        stopped.set()

    signal.signal(signal.SIGTERM, _term)
    _mark(marks, f"{role}.ready")
    while not stopped.wait(0.1):
        pass
    time.sleep(stop_seconds)
    _mark(marks, f"{role}.stopped")


def crashing(role: str, marks: str, stop_seconds: float) -> None:
    """Dies at once, every time."""
    sys.exit(CRASH_EXIT)


def stubborn(role: str, marks: str, stop_seconds: float) -> None:
    """Takes no notice of SIGTERM (a process stuck in an HSM call)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _mark(marks, f"{role}.ready")
    while True:
        time.sleep(1)


def _specs(scenario: str, marks: str) -> list[ChildSpec]:
    def spec(
        role: str, target: Callable[..., None], stop_seconds: float = 0.0, last: bool = False
    ) -> ChildSpec:
        return ChildSpec(role, target, (role, marks, stop_seconds), last=last)

    return {
        "crash-loop": [spec("steady", steady), spec("crasher", crashing)],
        "stubborn": [spec("steady", steady), spec("stubborn", stubborn)],
        "order": [spec("first", steady, stop_seconds=0.5), spec("last", steady, last=True)],
    }[scenario]


def main() -> None:
    scenario, marks, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    logs.configure("supervisor")
    supervisor = Supervisor(
        _specs(scenario, marks), shutdown_timeout=timeout, backoff=Backoff(cap=2.0)
    )
    sys.exit(supervisor.run())


if __name__ == "__main__":
    main()
