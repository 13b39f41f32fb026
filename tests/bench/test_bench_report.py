"""The benchmark's report: which resource it names as the limit, and what it writes where.

Figures here are made up: the rendering and the decisions are under test, never timings.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from bench import usage
from bench.report import Cpu, Latency, Run, Sql, limiting, render, write_report

MACHINE = {
    "date": "2026-12-01 22:00 UTC",
    "cpu": "Test CPU",
    "cores": "2",
    "available": "2",
    "python": "3.11.7",
    "softhsm": "2.6.1",
    "sqlite": "3.40.1",
    "postgres": "15.20",
    "commit": "abc1234",
    "load": "0.10, 0.20, 0.30",
    "quick": "no",
}


def cpu(**changes: object) -> Cpu:
    """10 s on 2 cores, 40 % busy, no process near a full core: a run that waited."""
    base = Cpu(
        seconds=10.0,
        api=3.0,
        signer=2.0,
        background=0.5,
        postgres=1.0,
        clients=1.0,
        machine_busy=8.0,
        machine_all=20.0,
        busiest="api-1",
        busiest_share=0.3,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def run(database: str = "PostgreSQL", api: int = 2, signers: int = 1, **changes: object) -> Run:
    base = Run(
        database=database,
        api=api,
        signers=signers,
        load=(0.1, 0.2, 0.3),
        requests=100,
        concurrency=16,
        posts_per_second=12.0,
        signed_per_second=10.0,
        p50_ms=80.0,
        p99_ms=300.0,
        raw_signs_per_second=2000.0,
        cpu=cpu(),
        sql=Sql(
            requests=100,
            transactions=900,
            rows_written=1200,
            rows_read=50_000,
            sequential_scans=250,
            index_scans=3000,
            most_scanned="ledger_entries",
            most_scanned_rows=40_000,
        ),
        low_load=Latency(20, 40.0, 90.0),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_a_run_with_idle_cores_and_no_saturated_process_is_waiting() -> None:
    finding = limiting(run(database="SQLite", cpu=cpu(postgres=None)))

    assert finding.limit == "waiting"
    assert "SQLite's one write lock" in finding.text
    assert "40%" in finding.text  # the cores' busy share, from the run's own figures
    assert "BEGIN IMMEDIATE" in finding.next_step


def test_busy_cores_make_cpu_the_limit_with_the_cost_per_request() -> None:
    # 19 of 20 CPU seconds busy; ours: 3 + 2 + 0.5 + 1 + 0.5 = 7 s for 100 requests.
    finding = limiting(run(cpu=cpu(machine_busy=19.0, clients=0.5)))

    assert finding.limit == "cpu"
    assert "95% busy" in finding.text
    assert "70.0 ms of CPU" in finding.text
    # 2 cores at 70 ms a request: at most 29 a second; a ratio of 0.5 needs 2000 ms / 1000.
    assert "at most 29 withdrawals/s" in finding.text
    assert "at most 2.00 ms of CPU per request" in finding.text
    # The largest part, the API's 3 s, is what the next step is about.
    assert "API's CPU" in finding.next_step
    # The rest of the busy time (12 s of 20) is other work: a busy machine is said so.
    assert "Other work on the machine took 60%" in finding.text


def test_a_quiet_machine_is_not_called_busy() -> None:
    finding = limiting(run(cpu=cpu(machine_busy=18.0, api=12.0)))

    assert finding.limit == "cpu"
    assert "Other work" not in finding.text


def test_one_process_at_a_full_core_is_the_limit_when_the_cores_are_not() -> None:
    finding = limiting(run(cpu=cpu(busiest="signer-1", busiest_share=0.97)))

    assert finding.limit == "process"
    assert "signer-1 used 97% of a core" in finding.text
    assert "--signers" in finding.next_step

    clients = limiting(run(cpu=cpu(busiest="clients", busiest_share=0.9)))
    assert "spread them over processes" in clients.next_step


def test_the_report_shows_both_databases_the_grid_and_the_goals() -> None:
    sqlite = run(database="SQLite", api=1, cpu=cpu(postgres=None), sql=None)
    postgres = run(signed_per_second=1200.0, p99_ms=200.0)
    grid = [
        run(api=api, signers=signers, signed_per_second=10.0 * api, low_load=None)
        for api in (1, 2, 4)
        for signers in (1, 2, 4)
    ]

    text = render(MACHINE, [sqlite, postgres], grid)

    assert "| SQLite | 1 + 1 | 0.10, 0.20, 0.30 | 2,000 | 12.0 | 10.0 | 0.005 |" in text
    assert "- SQLite: ratio 0.005 ≥ 0.5: **not met**" in text
    assert "- PostgreSQL: ratio 0.600 ≥ 0.5: met" in text
    assert "p99 under load 200.0 ms ≤ 250" in text
    assert text.count("\n| 4 | ") == 3  # the grid: a row per API and signer count
    assert "1 signer process and 1, 2, 4 API processes: 10.0, 20.0, 40.0" in text
    assert "throughput grows with processes here" in text
    assert "| SQLite 1 + 1 (defaults) | 40% | 30.0 | 20.0 | 5.0 | (in server) | 10.0 |" in text
    assert "| 9.0 | 12.0 | 500 | 2.5, 30.0 |" in text  # PostgreSQL's counts per request
    assert "Sequential scans of `ledger_entries` read the most rows: 400 per request." in text
    assert "Test CPU, 2 cores" in text
    assert "**SQLite, default processes (1 + 1)**: Waiting, not CPU" in text
    assert "**PostgreSQL scaling, at its best (4 + 1)**" in text


def test_a_grid_that_does_not_grow_says_so() -> None:
    grid = [run(api=api, signers=1, signed_per_second=10.0 + api / 10) for api in (1, 2, 4)]

    assert "does not grow with processes here" in render(MACHINE, [], grid)


def test_a_partial_run_says_what_it_left_out() -> None:
    text = render({**MACHINE, "quick": "yes"}, [run()], [], ["SQLite (`--only postgres`)"])

    assert "- not run: SQLite (`--only postgres`)" in text
    assert "`--quick`" in text
    assert "Scaling" not in text


def test_the_generated_section_replaces_only_its_own(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        "# Benchmarks\n\nintro\n\n<!-- end-to-end -->\nold figures\n<!-- end-to-end -->\n\n"
        "## By hand\n\nkept\n"
    )

    write_report(doc, "new figures")

    assert doc.read_text() == (
        "# Benchmarks\n\nintro\n\n<!-- end-to-end -->\nnew figures\n<!-- end-to-end -->\n\n"
        "## By hand\n\nkept\n"
    )


def test_the_supervisor_log_names_each_child_and_its_role(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    log.write_text(
        "2026-12-01 INFO [supervisor] custody.processes.supervisor: api-1 started (pid 101)\n"
        "2026-12-01 INFO [supervisor] custody.processes.supervisor: signer-2 started (pid 202)\n"
        "2026-12-01 INFO [supervisor] custody.processes.supervisor: background started (pid 3)\n"
    )

    roles = usage.roles(log)

    assert roles == {101: "api-1", 202: "signer-2", 3: "background"}
    assert [usage.role_group(roles.get(pid)) for pid in (101, 202, 3, 4)] == [
        "api",
        "signer",
        "background",
        "supervisor",
    ]


def test_this_process_is_in_its_own_tree_with_its_cpu_time() -> None:
    assert os.getpid() in usage.process_tree(os.getpid())
    before = usage.cpu_seconds([os.getpid()])
    sum(range(200_000))
    after = usage.cpu_seconds([os.getpid()])
    assert usage.used(before, after)[os.getpid()] >= 0
    busy, total = usage.machine_seconds()
    assert 0 < busy <= total
