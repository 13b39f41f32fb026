"""The supervisor's rules with tiny children (tests/processes/sleepers.py): a crash loop is slowed
down while the other children run on; the stop goes in order; what will not stop is killed at
the bound. Real processes and signals; no HSM, so each scenario takes a few seconds."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes.sleepers import CRASH_EXIT

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


class Scenario:
    def __init__(self, name: str, marks: Path, shutdown_timeout: float) -> None:
        self.marks = marks
        self.log = marks / "supervisor.log"
        argv = [sys.executable, "-m", "tests.processes.sleepers", name, str(marks)]
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                [*argv, str(shutdown_timeout)],
                cwd=ROOT,  # `-m` puts the repository on the path; spawned children inherit it
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, count: int = 1, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while len(re.findall(pattern, self.output())) < count:
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, f"no {count} x {pattern!r}:\n{self.output()}"
            time.sleep(0.05)

    def wait_ready(self, *roles: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not all((self.marks / f"{role}.ready").exists() for role in roles):
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, f"{roles} not ready:\n{self.output()}"
            time.sleep(0.05)

    def stop(self, seconds: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=seconds)

    def mark(self, name: str) -> float:
        return float((self.marks / name).read_text())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def test_a_crash_loop_is_slowed_down_and_the_others_run_on(tmp_path: Path) -> None:
    run = Scenario("crash-loop", tmp_path, shutdown_timeout=5)
    try:
        run.wait_ready("steady")
        run.wait_for(r"crasher started", count=4)
        assert run.stop() == 0, run.output()
    finally:
        run.close()
    out = run.output()
    assert re.search(rf"crasher \(pid \d+\) exited with code {CRASH_EXIT}", out), out
    delays = [float(d) for d in re.findall(r"crasher restarts in ([\d.]+) s", out)]
    # Doubling from 0.5 s up to the cap of 2 s, each between half its ceiling and the ceiling
    # (the log rounds to a tenth).
    for deaths, delay in enumerate(delays[:6], start=1):
        ceiling = min(2.0, 0.5 * 2 ** (deaths - 1))
        assert ceiling / 2 - 0.05 <= delay <= ceiling + 0.05, (deaths, delays)
    assert "stopped 3 times in a row" in out
    assert out.count("steady started") == 1  # never disturbed
    assert (tmp_path / "steady.stopped").exists()


def test_the_last_child_stops_after_the_others(tmp_path: Path) -> None:
    run = Scenario("order", tmp_path, shutdown_timeout=10)
    try:
        run.wait_ready("first", "last")
        assert run.stop() == 0, run.output()
    finally:
        run.close()
    assert run.mark("last.term") >= run.mark("first.stopped")
    assert "all processes stopped" in run.output()


def test_a_child_that_will_not_stop_is_killed_at_the_bound(tmp_path: Path) -> None:
    run = Scenario("stubborn", tmp_path, shutdown_timeout=2)
    try:
        run.wait_ready("steady", "stubborn")
        code = run.stop(seconds=30)
    finally:
        run.close()
    assert code == 1, run.output()
    assert "not stopped within 2 s, killed: stubborn" in run.output()
    assert (tmp_path / "steady.stopped").exists()
