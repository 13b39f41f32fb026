"""End-to-end benchmarks (issue 15), written to docs/benchmarks.md with the machine and date.

    make bench                    # the full run: SQLite, PostgreSQL, the PostgreSQL scaling grid
    .venv/bin/python -m bench.run --quick --output /tmp/bench-quick.md   # a check, ~1 minute
    .venv/bin/python -m bench.run --only sqlite      # or --only postgres

For each database (SQLite in the installation's folder; PostgreSQL at 127.0.0.1:5432, a
database of the benchmark's own, dropped afterwards):

1. raw PyKCS11 secp256k1 signs per second in one process (the HSM's ceiling here);
2. `custody serve` with its default processes: create-to-signed latency one request at a time,
   then withdrawals signed per second from concurrent client threads, each sending a withdrawal
   and long polling until it is signed (latency under load: each request's create-to-signed);
3. on PostgreSQL, the same load with 1, 2 and 4 API processes by 1, 2 and 4 signer processes.

Each run under load also records where the time went (`bench.usage`): CPU seconds of the
server's processes by role, of its PostgreSQL backends, of the clients and of the whole machine,
and PostgreSQL's transaction and row counts; `bench.report` names the limiting resource from
them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench import usage
from bench.client import BenchClient, free_port, wait_ready
from bench.report import Cpu, Run, Sql, render, write_report

ROOT = Path(__file__).resolve().parents[1]
CUSTODY = str(Path(sys.executable).with_name("custody"))
SERVER_START_SECONDS = 120.0
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# One client on one address sending far more than a trading desk would (every POST and a long
# poll from each thread): limits this roomy never refuse it, so the benchmark measures
# throughput; the buckets still run, at their usual cost.
BENCH_RATE_LIMITS = {
    f"CUSTODY_RATE_LIMIT_{kind}_{measure}": "1000000"
    for kind in ("ADDRESS", "CLIENT")
    for measure in ("PER_SECOND", "BURST")
}


def _env(home: Path, database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUSTODY_", "SOFTHSM2_"))}
    env["CUSTODY_HOME"] = str(home)
    if database_url:
        env["CUSTODY_DATABASE_URL"] = database_url
    env.update(BENCH_RATE_LIMITS)
    return env


def custody(home: Path, *args: str, database_url: str | None = None) -> str:
    out = subprocess.run(
        [CUSTODY, *args],
        env=_env(home, database_url),
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


def raw_signs_per_second(home: Path, count: int) -> float:
    """In a process of its own: a PKCS#11 module reads its token configuration once."""
    env = {**_env(home), "SOFTHSM2_CONF": str(home / "hsm" / "softhsm2.conf")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, "-m", "bench.raw", str(home), str(count)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip())


@dataclass(frozen=True)
class Counts:
    requests: int
    concurrency: int
    latency_requests: int
    scaling_requests: int
    raw_signs: int
    processes: tuple[int, ...]


@dataclass(frozen=True)
class Postgres:
    """The PostgreSQL server and the bench's own databases on it (custody_bench_<random>_…)."""

    admin_url: str
    prefix: str

    def url(self, database: str) -> str:
        return self.admin_url.rsplit("/", 1)[0] + f"/{database}"

    def create(self, name: str, template: str | None = None) -> str:
        copy = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
        return name

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            names = conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (self.prefix + "%",)
            ).fetchall()
            for (name,) in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def version(self) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]).split()[0] if row else "unknown"


@dataclass
class Server:
    """A running `custody serve`, its log (the supervisor names each child's pid there)."""

    process: subprocess.Popen[bytes]
    log: Path
    base: str


@contextlib.contextmanager
def serving(
    home: Path, database_url: str | None, api: int | None, signers: int | None
) -> Iterator[Server]:
    port = free_port()
    flags = [
        *(["--workers", str(api)] if api else []),
        *(["--signers", str(signers)] if signers else []),
    ]
    log = home / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [CUSTODY, "serve", "--host", "127.0.0.1", "--port", str(port), *flags],
            env=_env(home, database_url),
            stdout=out,
            stderr=out,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        try:
            # Many processes starting on a busy machine take a while to import and log in.
            wait_ready(base, timeout=SERVER_START_SECONDS)
        except RuntimeError:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(
                f"custody serve did not become ready; its log ends:\n{tail}"
            ) from None
        yield Server(process, log, base)
    finally:
        process.terminate()
        process.wait(timeout=60)


def _postgres_pids(postgres: Postgres | None, database: str | None) -> list[int]:
    if postgres is None or database is None:
        return []
    return usage.postgres_backends(postgres.admin_url, database)


def under_load(
    *,
    database: str,
    api: int,
    signers: int,
    home: Path,
    database_url: str | None,
    counts: Counts,
    requests: int,
    raw: float,
    flags: bool,
    latency_requests: int = 0,
    postgres: Postgres | None = None,
    pg_database: str | None = None,
) -> Run:
    """One server: (latency one at a time, then) throughput, with its CPU and SQL accounting."""
    sql_before = (
        usage.postgres_counters(postgres.admin_url, pg_database)
        if postgres and pg_database
        else None
    )
    scans_before = usage.table_scans(database_url) if database_url and sql_before else {}
    load = os.getloadavg()
    with serving(home, database_url, api if flags else None, signers if flags else None) as srv:
        client = BenchClient.from_home(home, srv.base)
        low = client.latency(latency_requests, first_nonce=requests) if latency_requests else None
        before = usage.sample(srv.process.pid, _postgres_pids(postgres, pg_database))
        result = client.run(requests, counts.concurrency)
        after = usage.sample(
            srv.process.pid,
            {*before.postgres, *_postgres_pids(postgres, pg_database)},
        )
        roles = usage.roles(srv.log)
    cpu = _cpu(before, after, roles, with_postgres=postgres is not None)
    sql = None
    if postgres and pg_database and sql_before is not None:
        usage.wait_disconnected(postgres.admin_url, pg_database)
        sql_after = usage.postgres_counters(postgres.admin_url, pg_database)
        diff = {name: sql_after[name] - sql_before.get(name, 0) for name in sql_after}
        scans = _scan_difference(scans_before, usage.table_scans(postgres.url(pg_database)))
        most = max(scans, key=lambda table: scans[table][1], default="")
        sql = Sql(
            requests=requests + latency_requests,
            transactions=diff["xact_commit"] + diff["xact_rollback"],
            rows_written=diff["tup_inserted"] + diff["tup_updated"] + diff["tup_deleted"],
            rows_read=diff["tup_returned"] + diff["tup_fetched"],
            sequential_scans=sum(seq for seq, _, _ in scans.values()),
            index_scans=sum(idx for _, _, idx in scans.values()),
            most_scanned=most,
            most_scanned_rows=scans[most][1] if most else 0,
        )
    return Run(
        database=database,
        api=api,
        signers=signers,
        load=load,
        requests=requests,
        concurrency=counts.concurrency,
        posts_per_second=result.posts_per_second,
        signed_per_second=result.signed_per_second,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        raw_signs_per_second=raw,
        cpu=cpu,
        sql=sql,
        low_load=low,
    )


def _scan_difference(
    before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]]
) -> dict[str, tuple[int, int, int]]:
    zero = (0, 0, 0)
    return {
        table: (
            counts[0] - before.get(table, zero)[0],
            counts[1] - before.get(table, zero)[1],
            counts[2] - before.get(table, zero)[2],
        )
        for table, counts in after.items()
    }


def _cpu(
    before: usage.Sample, after: usage.Sample, roles: dict[int, str], *, with_postgres: bool
) -> Cpu:
    seconds = after.at - before.at
    server = usage.used(before.server, after.server)
    by_group: dict[str, float] = {"api": 0.0, "signer": 0.0, "background": 0.0, "supervisor": 0.0}
    for pid, used in server.items():
        by_group[usage.role_group(roles.get(pid))] += used
    clients = after.client - before.client
    candidates = {roles.get(pid, "supervisor"): used for pid, used in server.items()}
    candidates["clients"] = clients
    busiest = max(candidates, key=lambda role: candidates[role])
    postgres = sum(usage.used(before.postgres, after.postgres).values())
    return Cpu(
        seconds=seconds,
        api=by_group["api"],
        signer=by_group["signer"],
        background=by_group["background"] + by_group["supervisor"],
        postgres=postgres if with_postgres else None,
        clients=clients,
        machine_busy=after.machine_busy - before.machine_busy,
        machine_all=after.machine_all - before.machine_all,
        busiest=busiest,
        busiest_share=candidates[busiest] / seconds if seconds else 0.0,
    )


def _default_processes(*, sqlite: bool) -> tuple[int, int]:
    """What `custody serve` with no flags runs on this machine with this database."""
    from custody.processes.sizing import available_cores, default_processes

    return default_processes(available_cores(), sqlite=sqlite)


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def bench_sqlite(tmp: Path, counts: Counts) -> Run:
    home = tmp / "sqlite"
    log("SQLite: custody init + demo seed")
    custody(home, "init")
    custody(home, "demo", "seed")
    raw = raw_signs_per_second(home, counts.raw_signs)
    log(f"SQLite: raw {raw:,.0f} signs/s; serving with the default processes")
    api, signers = _default_processes(sqlite=True)
    run = under_load(
        database="SQLite",
        api=api,
        signers=signers,
        home=home,
        database_url=None,
        counts=counts,
        requests=counts.requests,
        raw=raw,
        flags=False,
        latency_requests=counts.latency_requests,
    )
    log(f"SQLite: {run.signed_per_second:,.1f} signed/s, ratio {run.ratio:.3f}")
    return run


def bench_postgres(
    tmp: Path, counts: Counts, postgres: Postgres, *, scaling: bool
) -> tuple[Run, list[Run]]:
    home = tmp / "postgres"
    seeded = postgres.create(f"{postgres.prefix}_seeded")
    log(f"PostgreSQL: custody init + demo seed into {seeded}")
    custody(home, "init", database_url=postgres.url(seeded))
    custody(home, "demo", "seed", database_url=postgres.url(seeded))
    raw = raw_signs_per_second(home, counts.raw_signs)
    log(f"PostgreSQL: raw {raw:,.0f} signs/s")

    def one(api: int, signers: int, *, flags: bool, latency: int, requests: int) -> Run:
        # Every run starts from the same seeded database: no run pays for an earlier one's
        # requests (limit windows, ledger size).
        name = postgres.create(f"{postgres.prefix}_{api}_{signers}_{int(flags)}", seeded)
        run = under_load(
            database="PostgreSQL",
            api=api,
            signers=signers,
            home=home,
            database_url=postgres.url(name),
            counts=counts,
            requests=requests,
            raw=raw,
            flags=flags,
            latency_requests=latency,
            postgres=postgres,
            pg_database=name,
        )
        log(
            f"PostgreSQL {api} + {signers}: {run.signed_per_second:,.1f} signed/s, "
            f"ratio {run.ratio:.3f}, p50 {run.p50_ms:.0f} ms, p99 {run.p99_ms:.0f} ms"
        )
        return run

    api, signers = _default_processes(sqlite=False)
    default = one(
        api, signers, flags=False, latency=counts.latency_requests, requests=counts.requests
    )
    grid = []
    if scaling:
        for api in counts.processes:
            for signers in counts.processes:
                grid.append(
                    one(api, signers, flags=True, latency=0, requests=counts.scaling_requests)
                )
    return default, grid


def machine_facts(postgres: Postgres | None) -> dict[str, str]:
    from custody.processes.sizing import available_cores

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "available": str(available_cores()),
        "python": platform.python_version(),
        "softhsm": _softhsm_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgres": postgres.version() if postgres else "not run",
        "commit": _commit(),
        "load": ", ".join(f"{value:.2f}" for value in os.getloadavg()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small counts: check it works")
    parser.add_argument("--only", choices=("sqlite", "postgres"), help="one database")
    parser.add_argument("--requests", type=int, help="withdrawals under load (default 600)")
    parser.add_argument("--concurrency", type=int, default=16, help="client threads")
    parser.add_argument("--raw-signs", type=int, help="raw PKCS#11 signs (default 3000)")
    parser.add_argument(
        "--latency-requests", type=int, help="one at a time, per database (default 200)"
    )
    parser.add_argument(
        "--scaling-requests", type=int, help="withdrawals per scaling run (default 300)"
    )
    parser.add_argument(
        "--processes", default=None, help="the scaling grid's counts (default 1,2,4)"
    )
    parser.add_argument("--postgres", default=POSTGRES_ADMIN_URL, help="admin database URL")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    quick = args.quick
    counts = Counts(
        requests=args.requests or (40 if quick else 600),
        concurrency=args.concurrency,
        latency_requests=args.latency_requests or (10 if quick else 200),
        scaling_requests=args.scaling_requests or (24 if quick else 300),
        raw_signs=args.raw_signs or (300 if quick else 3000),
        processes=tuple(
            int(n) for n in (args.processes or ("1,2" if quick else "1,2,4")).split(",")
        ),
    )
    postgres = None
    if args.only != "sqlite":
        postgres = Postgres(args.postgres, f"custody_bench_{secrets.token_hex(4)}")
        try:
            postgres.version()
        except psycopg.Error as exc:
            sys.exit(f"PostgreSQL at {args.postgres} cannot be used ({exc}); or --only sqlite")
    machine = {**machine_facts(postgres), "quick": "yes" if quick else "no"}
    started = time.monotonic()
    defaults: list[Run] = []
    scaling: list[Run] = []
    skipped = []
    with tempfile.TemporaryDirectory(prefix="custody-bench-") as folder:
        tmp = Path(folder)
        if args.only != "postgres":
            defaults.append(bench_sqlite(tmp, counts))
        else:
            skipped.append("SQLite (`--only postgres`)")
        if postgres is not None:
            try:
                default, scaling = bench_postgres(tmp, counts, postgres, scaling=True)
                defaults.append(default)
            finally:
                postgres.drop_all()
        else:
            skipped.append("PostgreSQL and its scaling (`--only sqlite`)")
    took = time.monotonic() - started
    machine["took"] = f"{took / 60:.1f} minutes"
    write_report(args.output, render(machine, defaults, scaling, skipped))
    log(f"done in {took:,.0f} s; written to {args.output}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _softhsm_version() -> str:
    try:
        return subprocess.run(
            ["softhsm2-util", "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" with local changes" if dirty else "")


if __name__ == "__main__":
    main()
