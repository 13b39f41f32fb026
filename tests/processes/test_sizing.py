"""`custody serve` with no flags sizes its processes to the cores and the database (issue 15);
a flag wins over a setting, a setting over the cores, each number on its own."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from sqlalchemy import text

from custody.processes import launch, sizing
from custody.processes.sizing import Processes, available_cores, default_processes, plan
from custody.runtime import database_timeouts
from custody.settings import Settings, load_settings
from custody.store.database import (
    DEFAULT_CONNECTIONS,
    Database,
    DatabaseTimeouts,
    DatabaseUnavailable,
    pool_sizes,
)
from tests.support.postgres import PostgresServer


@pytest.mark.parametrize(
    ("cores", "sqlite", "expected"),
    [
        (1, True, (1, 1)),
        (2, True, (1, 1)),  # measured: a second API process lost throughput here
        (3, True, (1, 1)),
        (4, True, (2, 1)),
        (64, True, (2, 1)),
        (1, False, (1, 1)),
        (2, False, (2, 1)),
        (4, False, (4, 1)),
        (8, False, (8, 2)),
        (12, False, (8, 3)),
        (16, False, (8, 4)),
        (128, False, (8, 4)),
    ],
)
def test_the_defaults_follow_the_cores_and_the_database(
    cores: int, sqlite: bool, expected: tuple[int, int]
) -> None:
    assert default_processes(cores, sqlite=sqlite) == expected


def test_a_flag_wins_over_a_setting_which_wins_over_the_cores() -> None:
    def chosen(**given: int | None) -> tuple[int, str, int, str]:
        asked: dict[str, int | None] = {
            "api_flag": None,
            "signers_flag": None,
            "api_setting": None,
            "signers_setting": None,
        } | given
        found = plan(**asked, sqlite=False, cores=16)
        return found.api, found.api_from, found.signers, found.signers_from

    assert chosen() == (8, "cores", 4, "cores")
    assert chosen(api_setting=3) == (3, "settings", 4, "cores")
    assert chosen(api_setting=3, api_flag=5) == (5, "flag", 4, "cores")
    assert chosen(signers_setting=2) == (8, "cores", 2, "settings")
    assert chosen(signers_setting=2, signers_flag=1, api_flag=1) == (1, "flag", 1, "flag")


def test_the_settings_say_which_database_and_may_fix_the_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sizing, "available_cores", lambda: 8)
    for name in [n for n in os.environ if n.startswith("CUSTODY_")]:
        monkeypatch.delenv(name)
    sqlite = sizing.for_settings(load_settings(tmp_path), api_flag=None, signers_flag=None)
    assert (sqlite.api, sqlite.signers, sqlite.sqlite) == (2, 1, True)
    postgres = load_settings(tmp_path, database_url="postgresql://custody@db/custody")
    found = sizing.for_settings(postgres, api_flag=None, signers_flag=None)
    assert (found.api, found.signers, found.sqlite) == (8, 2, False)
    monkeypatch.setenv("CUSTODY_SIGNER_PROCESSES", "3")
    fixed = sizing.for_settings(load_settings(tmp_path), api_flag=None, signers_flag=None)
    assert (fixed.api, fixed.api_from, fixed.signers, fixed.signers_from) == (
        2,
        "cores",
        3,
        "settings",
    )


def test_the_start_up_line_says_what_runs_and_why() -> None:
    auto = Processes(api=1, signers=1, cores=2, sqlite=True, api_from="cores", signers_from="cores")
    assert auto.describe() == (
        "1 API process (sized to 2 cores and SQLite), "
        "1 signer process (sized to 2 cores and SQLite) and the background process"
    )
    given = Processes(
        api=4, signers=2, cores=1, sqlite=False, api_from="flag", signers_from="settings"
    )
    assert given.describe_api() == "4 API processes (--workers/--signers)"
    assert given.describe_signers() == "2 signer processes (settings)"


def cgroup_tree(tmp_path: Path, own: str, quotas: dict[str, str]) -> tuple[Path, Path]:
    """A cgroup v2 hierarchy under tmp_path: this process in `own`, `cpu.max` files as given
    (relative folder -> contents); the /proc/self/cgroup that names it."""
    root = tmp_path / "cgroup"
    (root / own.lstrip("/")).mkdir(parents=True)
    for folder, quota in quotas.items():
        (root / folder / "cpu.max").write_text(quota)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(f"0::{own}\n")
    return root, proc


def test_a_cgroup_quota_bounds_the_cores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(8)))
    # systemd's CPUQuota=150% on the service, no limit on the slice above it.
    root, proc = cgroup_tree(
        tmp_path,
        "/system.slice/custody.service",
        {"system.slice": "max 100000\n", "system.slice/custody.service": "150000 100000\n"},
    )
    assert available_cores(root, proc) == 2  # 1.5 CPUs run two processes at once
    # The tightest quota on the way up counts.
    (root / "system.slice" / "cpu.max").write_text("100000 100000\n")
    assert available_cores(root, proc) == 1


def test_without_a_quota_the_affinity_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 2, 5})
    root, proc = cgroup_tree(tmp_path, "/", {"": "max 100000\n"})
    assert available_cores(root, proc) == 3
    proc.write_text("12:cpu,cpuacct:/docker/abc\n")  # cgroup v1 only
    assert available_cores(root, proc) == 3
    assert available_cores(root, tmp_path / "no-such-file") == 3
    # A quota larger than the affinity changes nothing.
    root, proc = cgroup_tree(tmp_path / "big", "/", {"": "800000 100000\n"})
    assert available_cores(root, proc) == 3


def test_this_machine_has_at_least_one_core() -> None:
    assert available_cores() >= 1


def test_the_processes_of_a_tree_share_its_postgresql_connections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However many cores size `custody serve`, it opens at most `database_connections`:
    8 API processes, 2 signers and the background process of 30 each would pass PostgreSQL's
    default max_connections (100) and lock everyone out."""
    for name in [n for n in os.environ if n.startswith("CUSTODY_")]:
        monkeypatch.delenv(name)
    settings = load_settings(tmp_path, database_url="postgresql://custody@db/custody")
    assert settings.database_connections == 60
    assert database_timeouts(settings).connections == DEFAULT_CONNECTIONS  # a lone process
    shared = launch.sharing_connections(settings, 11)
    assert shared.database_process_connections == 5
    assert 11 * database_timeouts(shared).connections <= settings.database_connections
    assert launch.sharing_connections(settings, 100).database_process_connections == 4
    fixed = settings.model_copy(update={"database_process_connections": 12})
    assert launch.sharing_connections(fixed, 11).database_process_connections == 12


def test_serve_and_worker_hand_each_child_its_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("CUSTODY_")]:
        monkeypatch.delenv(name)
    settings = load_settings(tmp_path, database_url="postgresql://custody@db/custody")
    given: list[Settings] = []
    monkeypatch.setattr(launch, "_supervise", lambda handed, *_a, **_k: given.append(handed) or 0)
    with socket.socket() as listener:
        launch.serve(settings, listener, api_processes=4, signer_processes=1, with_workers=True)
        launch.serve(settings, listener, api_processes=4, signer_processes=1, with_workers=False)
    launch.work(settings, signer_processes=2, background=True)
    assert [s.database_process_connections for s in given] == [10, 15, 20]


def test_a_process_opens_no_more_connections_than_its_share(pg_server: PostgresServer) -> None:
    """Three connections: the liveness probe's and two pooled; a third call waits for one to
    come back, as long as the pool timeout, then is a busy 503."""
    db = Database(
        pg_server.create_database(),
        timeouts=DatabaseTimeouts(connections=3, pool_seconds=0.3),
    )
    try:
        assert pool_sizes(3) == (1, 1)
        with db.read() as first, db.read() as second:
            first.execute(text("SELECT 1"))
            second.execute(text("SELECT 1"))
            with pytest.raises(DatabaseUnavailable) as raised, db.read() as third:
                third.execute(text("SELECT 1"))
        assert raised.value.message == "the database is busy; try again shortly"
        with db.read() as again:  # back in the pool
            assert again.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        db.dispose()
