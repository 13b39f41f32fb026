"""A `custody serve` or `custody worker` process tree started the way an operator starts it,
watched from outside: its log, its children (from /proc) and its HTTP port.

Which pid holds which role is read from the supervisor's own log lines (`signer-1 started (pid
N)`), so the tests also prove that the supervisor says what it does.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.process import CUSTODY

START_SECONDS = 90.0  # spawned children import the whole app; the machines running tests are shared
_STARTED = re.compile(r"\[supervisor\] custody\.processes: (\S+) started \(pid (\d+)\)")
_STARTED_MESSAGE = re.compile(r"(\S+) started \(pid (\d+)\)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Tree:
    process: subprocess.Popen[bytes]
    log: Path
    home: str
    port: int | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "not a `custody serve` tree"
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def started(self) -> dict[str, list[int]]:
        """Every pid each role was started with, in order (text or JSON log lines)."""
        found: dict[str, list[int]] = {}
        for line in self.output().splitlines():
            started = _STARTED.search(line) or _started_json(line)
            if started is not None:
                role, pid = started.groups()
                found.setdefault(role, []).append(int(pid))
        return found

    def pid_of(self, role: str) -> int:
        return self.started()[role][-1]

    def children(self) -> set[int]:
        return children_of(self.process.pid)

    def wait_for(self, what: str, done: Callable[[], bool], seconds: float = 30.0) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not within {seconds:.0f} s\n{self.output()}")
            time.sleep(0.05)

    def wait_restarted(self, role: str, old_pid: int) -> int:
        self.wait_for(f"{role} restarted", lambda: self.pid_of(role) != old_pid)
        return self.pid_of(role)

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def stop(self) -> None:
        """Leave nothing behind, whatever the test did (children of a supervisor that was
        killed are no longer its children: they are found by the pids it logged)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        for pids in self.started().values():
            for pid in pids:
                if _environ(pid).get("CUSTODY_HOME") == self.home:
                    _kill_quietly(pid)


def start(
    argv: Sequence[str],
    env: Mapping[str, str],
    log: Path,
    *,
    roles: Sequence[str],
    port: int | None = None,
    command: str = CUSTODY,
) -> Tree:
    """Start `custody ARGV` and wait until each of `roles` was started (and, for a server,
    until /readyz answers 200). `command`: another installation's `custody` script."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [command, *argv],
            env=dict(env),
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    tree = Tree(process, log, env["CUSTODY_HOME"], port)
    try:
        tree.wait_for(
            "all processes started",
            lambda: _alive(tree) and set(roles) <= set(tree.started()),
            START_SECONDS,
        )
        if port is not None:
            tree.wait_for("ready", lambda: _alive(tree) and _ready(tree.url), START_SECONDS)
    except BaseException:
        tree.stop()
        raise
    return tree


def _started_json(line: str) -> re.Match[str] | None:
    """A supervisor's `ROLE started (pid N)` in a CUSTODY_LOG_FORMAT=json line."""
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if record.get("process") != "supervisor" or record.get("logger") != "custody.processes":
        return None
    return _STARTED_MESSAGE.fullmatch(str(record.get("message", "")))


def children_of(parent: int) -> set[int]:
    """Pids descending from `parent` now, at any depth (the supervisor's children are forked by
    its fork server). From /proc: no process library needed."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # gone meanwhile
            # The command name may hold spaces and parentheses: the fields follow the last ")".
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {parent}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}  # gone
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, _, v in pairs}


def _alive(tree: Tree) -> bool:
    if tree.process.poll() is not None:
        pytest.fail(f"exited with {tree.process.returncode}:\n{tree.output()}")
    return True


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def _kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
