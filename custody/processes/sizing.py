"""How many API and signer processes `custody serve` runs when neither a flag nor a setting says.

The cores are those this process may run on: its CPU affinity (taskset, cpusets), further bounded
by a cgroup v2 CPU quota (`docker run --cpus`, systemd's `CPUQuota=`), which `os.cpu_count()`
alone would not see.

What the numbers rest on (docs/benchmarks.md): the API does most of the work, about 10 ms of
Python CPU per accepted withdrawal plus about 8 ms per other authenticated call, and one process
runs Python on one core at a time (the GIL), so on PostgreSQL the API gets a process per core; a
signer does a fraction of that per request (it claims batches, an HSM signature takes under 1 ms
here), so one per four cores. Beyond eight API processes every writer still queues on the one
ledger lock, and each process keeps a pool of up to 30 PostgreSQL connections.

On SQLite every write transaction of every process takes the database's only write lock, and a
process that finds it taken sleeps in SQLite's busy handler (1, 2, 5, 10 … 100 ms, no queue)
instead of being woken when it frees: more writer processes mean more of those sleeps, and the
signer, one writer among them, is not first in line. On two cores a second API process lost
throughput (docs/benchmarks.md), so SQLite keeps one signer and one API process below four cores,
two from four.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from custody.settings import Settings
from custody.store.database import is_sqlite

POSTGRES_MAX_API = 8
SQLITE_MAX_API = 2
SQLITE_TWO_API_CORES = 4
MAX_SIGNERS = 4
CORES_PER_SIGNER = 4

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


@dataclass(frozen=True)
class Processes:
    """The numbers `custody serve` runs with, and where each came from (for its start-up line)."""

    api: int
    signers: int
    cores: int
    sqlite: bool
    api_from: str  # "flag", "settings" or "cores"
    signers_from: str

    def describe_api(self) -> str:
        return f"{_count(self.api, 'API process')} ({self._origin(self.api_from)})"

    def describe_signers(self) -> str:
        return f"{_count(self.signers, 'signer process')} ({self._origin(self.signers_from)})"

    def describe(self) -> str:
        return f"{self.describe_api()}, {self.describe_signers()} and the background process"

    def _origin(self, origin: str) -> str:
        if origin == "cores":
            database = "SQLite" if self.sqlite else "PostgreSQL"
            return f"sized to {_count(self.cores, 'core')} and {database}"
        return "--workers/--signers" if origin == "flag" else "settings"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 'es' if noun.endswith('s') else 's'}"


def default_processes(cores: int, *, sqlite: bool) -> tuple[int, int]:
    """(API processes, signer processes) for this many cores and this database."""
    cores = max(1, cores)
    if sqlite:
        return (SQLITE_MAX_API if cores >= SQLITE_TWO_API_CORES else 1), 1
    signers = max(1, min(MAX_SIGNERS, cores // CORES_PER_SIGNER))
    return min(POSTGRES_MAX_API, cores), signers


def for_settings(
    settings: Settings, *, api_flag: int | None, signers_flag: int | None
) -> Processes:
    """What `custody serve` and `custody worker` run with these settings and flags."""
    return plan(
        api_flag=api_flag,
        signers_flag=signers_flag,
        api_setting=settings.api_processes,
        signers_setting=settings.signer_processes,
        sqlite=is_sqlite(settings.resolved_database_url),
    )


def plan(
    *,
    api_flag: int | None,
    signers_flag: int | None,
    api_setting: int | None,
    signers_setting: int | None,
    sqlite: bool,
    cores: int | None = None,
) -> Processes:
    """A flag wins over a setting (CUSTODY_API_PROCESSES, custody.toml), which wins over the
    cores; each number on its own."""
    cores = available_cores() if cores is None else cores
    api_auto, signers_auto = default_processes(cores, sqlite=sqlite)
    api, api_from = _pick(api_flag, api_setting, api_auto)
    signers, signers_from = _pick(signers_flag, signers_setting, signers_auto)
    return Processes(api, signers, cores, sqlite, api_from, signers_from)


def _pick(flag: int | None, setting: int | None, auto: int) -> tuple[int, str]:
    if flag is not None:
        return flag, "flag"
    if setting is not None:
        return setting, "settings"
    return auto, "cores"


def available_cores(cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    """The cores this process may use: its affinity, bounded by its cgroup's CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root, proc_cgroup)
    if quota is not None:
        cores = min(cores, quota)
    return max(1, cores)


def cgroup_cpu_quota(cgroup_root: Path, proc_cgroup: Path) -> int | None:
    """The smallest cgroup v2 `cpu.max` quota from this process's cgroup up to the root, in
    whole cores rounded up (1.5 CPUs still run two processes at once); None without one."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    own = next((line[3:] for line in lines if line.startswith("0::")), None)
    if own is None:
        return None  # cgroup v1 only: its quota files are not read
    folder = (cgroup_root / own.lstrip("/")).resolve()
    root = cgroup_root.resolve()
    quotas = []
    while True:
        quota = _cpu_max(folder / "cpu.max")
        if quota is not None:
            quotas.append(quota)
        if folder == root or root not in folder.parents:
            break
        folder = folder.parent
    return min(quotas) if quotas else None


def _cpu_max(path: Path) -> int | None:
    try:
        fields = path.read_text().split()
    except OSError:
        return None
    if len(fields) != 2 or fields[0] == "max":  # "QUOTA PERIOD", or "max PERIOD": none
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))
