"""Where a run's time goes, cheaply: CPU seconds of processes (from /proc/PID/stat), the whole
machine's busy time (/proc/stat), and PostgreSQL's counters for one database.

Linux only, like the rest of the benchmark's set-up. A process that is gone when sampled
counts nothing from then on; the runs keep their processes alive throughout.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STARTED = re.compile(r"(\S+) started \(pid (\d+)\)")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds in user and kernel mode) of `pid`; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_tree(root: int) -> list[int]:
    """`root` and every process descended from it (the supervisor's fork server's children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    seconds = {}
    for pid in pids:
        stat = _stat(pid)
        if stat is not None:
            seconds[pid] = stat[1]
    return seconds


def used(before: Mapping[int, float], after: Mapping[int, float]) -> dict[int, float]:
    """CPU seconds each process used between two samples (all of it if it started since)."""
    return {pid: seconds - before.get(pid, 0.0) for pid, seconds in after.items()}


def machine_seconds() -> tuple[float, float]:
    """(busy, all) CPU seconds of every CPU of the machine since boot; idle and iowait are not
    busy."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is in user)
    return (total - fields[3] - fields[4]) / CLOCK_TICKS, total / CLOCK_TICKS


def roles(log: Path) -> dict[int, str]:
    """pid -> role (api-1, signer-1, background) from the supervisor's `… started (pid N)`."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return {}
    return {int(pid): role for role, pid in STARTED.findall(text)}


def role_group(role: str | None) -> str:
    """`api`, `signer`, `background`, or `supervisor` (the supervisor, its fork server and
    resource tracker: the rest of the tree)."""
    if role is None:
        return "supervisor"
    return role.split("-", 1)[0]


@dataclass(frozen=True)
class Sample:
    """Everything one run's CPU accounting compares, taken at one moment."""

    at: float
    server: dict[int, float]
    postgres: dict[int, float]
    client: float
    machine_busy: float
    machine_all: float


def sample(server_pid: int, postgres_pids: Iterable[int] = ()) -> Sample:
    busy, total = machine_seconds()
    return Sample(
        at=time.perf_counter(),
        server=cpu_seconds(process_tree(server_pid)),
        postgres=cpu_seconds(postgres_pids),
        client=time.process_time(),  # every client thread runs in this process
        machine_busy=busy,
        machine_all=total,
    )


# pg_stat_database counters compared before and after a server's run.
PG_COUNTERS = (
    "xact_commit",
    "xact_rollback",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
)


def postgres_backends(admin_url: str, database: str) -> list[int]:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchall()
    return [int(row[0]) for row in rows]


def postgres_counters(admin_url: str, database: str) -> dict[str, int]:
    """The database's pg_stat_database counters. A backend reports its counts when it goes
    idle (at most once a second) or exits: read them after the server has stopped and its
    connections are gone (`wait_disconnected`)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT {', '.join(PG_COUNTERS)} FROM pg_stat_database WHERE datname = %s",
            (database,),
        ).fetchone()
    return {name: int(value or 0) for name, value in zip(PG_COUNTERS, row or (), strict=False)}


def wait_disconnected(admin_url: str, database: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while postgres_backends(admin_url, database) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.2)  # an exiting backend reports its counts on the way out


def table_scans(database_url: str) -> dict[str, tuple[int, int, int]]:
    """table -> (sequential scans, rows those scans read, index scans) in the database at
    `database_url`, counted like `postgres_counters` (read them once its server has stopped)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0) FROM pg_stat_user_tables"
        ).fetchall()
    return {str(name): (int(seq), int(read), int(idx)) for name, seq, read, idx in rows}
