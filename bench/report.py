"""Turning benchmark results into docs/benchmarks.md (the newest run replaces its section).

Pure: the figures come in, Markdown comes out. What limits each run is decided here from the
run's own measurements (`limiting`), so the prose never carries a figure by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HEADER = "# Benchmarks\n\nMeasured by `make bench` (`bench/run.py`). Tests never assert timings.\n"
MARK = "<!-- end-to-end -->"

QUICK_NOTE = " (`--quick`: small counts, a check of the benchmark, not a measurement)"

# Issue 15's goals.
RATIO_GOAL = 0.5
LOW_LOAD_P50_GOAL_MS = 15.0
LOW_LOAD_P99_GOAL_MS = 50.0
UNDER_LOAD_P99_GOAL_MS = 250.0

# A resource this busy over a run is what holds the run back.
SATURATED = 0.85
# Other work taking this much of the machine makes the run's figures those of a busy machine.
BUSY_MACHINE = 0.25


@dataclass(frozen=True)
class Latency:
    """Create-to-signed seen by a client, in milliseconds, over `requests` requests."""

    requests: int
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class Cpu:
    """CPU seconds used during one throughput run, by part, and the whole machine's."""

    seconds: float  # wall-clock length of the run
    api: float
    signer: float
    background: float  # the background process, the supervisor and its fork server
    postgres: float | None  # the server's PostgreSQL backends; None on SQLite
    clients: float
    machine_busy: float  # busy CPU seconds of every core of the machine
    machine_all: float  # all CPU seconds of every core (cores times wall time)
    busiest: str  # the process (role) that used the most CPU, the clients' one included
    busiest_share: float  # its CPU seconds / wall seconds: the fraction of one core

    @property
    def cores(self) -> float:
        return self.machine_all / self.seconds if self.seconds else 0.0

    @property
    def busy(self) -> float:
        return self.machine_busy / self.machine_all if self.machine_all else 0.0

    @property
    def ours(self) -> float:
        return self.api + self.signer + self.background + (self.postgres or 0.0) + self.clients

    @property
    def others(self) -> float:
        """Busy CPU of everything else on the machine (other work, PostgreSQL's own
        background processes, the kernel's share not charged to a process)."""
        return max(0.0, self.machine_busy - self.ours)


@dataclass(frozen=True)
class Sql:
    """pg_stat_database counts over a server's whole run, and the requests it handled."""

    requests: int
    transactions: int
    rows_written: int
    rows_read: int
    sequential_scans: int = 0  # from pg_stat_user_tables
    index_scans: int = 0
    most_scanned: str = ""  # the table whose sequential scans read the most rows
    most_scanned_rows: int = 0  # the rows they read


@dataclass(frozen=True)
class Run:
    """One `custody serve` under load: its throughput, latencies and where the time went."""

    database: str  # "SQLite" or "PostgreSQL"
    api: int
    signers: int
    load: tuple[float, float, float]  # load average (1, 5, 15 min) when the run started
    requests: int
    concurrency: int
    posts_per_second: float
    signed_per_second: float
    p50_ms: float  # create-to-signed under this load
    p99_ms: float
    raw_signs_per_second: float
    cpu: Cpu
    sql: Sql | None = None
    low_load: Latency | None = None  # one request at a time, on the same server before

    @property
    def ratio(self) -> float:
        return self.signed_per_second / self.raw_signs_per_second

    def per_request_ms(self, seconds: float) -> float:
        return 1000 * seconds / self.requests

    @property
    def processes(self) -> str:
        return f"{self.api} + {self.signers}"


@dataclass(frozen=True)
class Finding:
    """What held a run back: `limit` is "cpu", "process" or "waiting"."""

    limit: str
    text: str
    next_step: str


def _biggest_part(run: Run) -> str:
    cpu = run.cpu
    parts = {
        "api": cpu.api,
        "signer": cpu.signer,
        "background": cpu.background,
        "postgres": cpu.postgres or 0.0,
        "clients": cpu.clients,
    }
    return max(parts, key=lambda part: parts[part])


CPU_NEXT_STEPS = {
    "api": "cut the API's CPU per call: `make profile` shows most of it in SQLAlchemy (ORM "
    "objects and statements of intake, authentication and the long poll's view), then the HTTP "
    "stack; fewer statements per call, columns instead of objects, statements built once",
    "signer": "cut the signer's CPU per claim: `make profile` shows most of it in SQLAlchemy "
    "(the configuration seal check's queries, the client evidence and policy checked again, "
    "the claim and finish paths); fewer statements per claim, checks shared by a batch",
    "background": "look at the background process's work per request (checkpoints, webhooks)",
    "postgres": "fewer statements and transactions per request",
    "clients": "the clients' own CPU (the SDK's request signing, HTTP): a lighter client, or "
    "clients on another machine to see the server alone",
}
PROCESS_NEXT_STEPS = {
    "api": "more API processes (`--workers`) where cores are free, or less CPU per call",
    "signer": "more signer processes (`--signers`) where cores are free, or less CPU per claim",
    "background": "less work per request in the background process",
    "supervisor": "look at what the supervisor does per request (it should do nothing)",
    "clients": "the benchmark's client threads share one Python process: spread them over "
    "processes",
}
WAIT_NEXT_STEPS = {
    "SQLite": "shorten what runs under SQLite's one write lock (derive and check before "
    "`BEGIN IMMEDIATE`, only compare under it: the signer's claim holds it longest), group "
    "commit across requests",
    "PostgreSQL": "shorten what runs under the ledger lock (checks before it, only a compare "
    "under it), reservations per limit instead of one lock for every write, group commit "
    "across requests, LISTEN/NOTIFY wake-ups",
}


def limiting(run: Run) -> Finding:
    """The resource that held `run` back, from its own CPU accounting."""
    cpu = run.cpu
    role = cpu.busiest.split("-", 1)[0]
    per = run.per_request_ms
    if cpu.busy >= SATURATED:
        total = per(cpu.ours)
        ceiling = cpu.cores * 1000 / total if total else 0.0
        need = cpu.cores * 1000 / (RATIO_GOAL * run.raw_signs_per_second)
        postgres = f", PostgreSQL {per(cpu.postgres):.1f}" if cpu.postgres is not None else ""
        busy_note = ""
        if cpu.others / cpu.machine_all >= BUSY_MACHINE:
            busy_note = (
                f" Other work on the machine took {cpu.others / cpu.machine_all:.0%} of its CPU: "
                "these figures are those of a busy machine, below what it does quiet."
            )
        text = (
            f"CPU: the machine's {cpu.cores:.0f} cores were {cpu.busy:.0%} busy.{busy_note} Per "
            f"signed request the run used {total:.1f} ms of CPU (API {per(cpu.api):.1f}, signer "
            f"{per(cpu.signer):.1f}, background and supervisor {per(cpu.background):.1f}"
            f"{postgres}, clients {per(cpu.clients):.1f}); at that cost {cpu.cores:.0f} cores "
            f"sign at most {ceiling:.0f} withdrawals/s (a ratio of "
            f"{ceiling / run.raw_signs_per_second:.2f}). A ratio of {RATIO_GOAL} needs at most "
            f"{need:.2f} ms of CPU per request here, every part included."
        )
        return Finding("cpu", text, CPU_NEXT_STEPS[_biggest_part(run)])
    if cpu.busiest_share >= SATURATED:
        text = (
            f"One process: {cpu.busiest} used {cpu.busiest_share:.0%} of a core (a Python process "
            f"runs on one core at a time) while the machine was {cpu.busy:.0%} busy."
        )
        return Finding("process", text, PROCESS_NEXT_STEPS.get(role, PROCESS_NEXT_STEPS["api"]))
    text = (
        f"Waiting, not CPU: the cores were {cpu.busy:.0%} busy and the busiest process "
        f"({cpu.busiest}) used {cpu.busiest_share:.0%} of a core, so a request spent most of its "
        f"{run.p50_ms:.0f} ms (p50) waiting: for locks ({_lock(run.database)}), commits reaching "
        "the disk and wake-ups."
    )
    return Finding("waiting", text, WAIT_NEXT_STEPS.get(run.database, WAIT_NEXT_STEPS["SQLite"]))


def _lock(database: str) -> str:
    return "SQLite's one write lock" if database == "SQLite" else "the ledger lock"


def _load(load: tuple[float, float, float]) -> str:
    return ", ".join(f"{value:.2f}" for value in load)


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _ms(value: float) -> str:
    return f"{value:.1f}"


def render(
    machine: Mapping[str, str],
    defaults: Sequence[Run],
    scaling: Sequence[Run],
    skipped: Sequence[str] = (),
) -> str:
    """The generated section (without its markers)."""
    lines = [
        "## Signing throughput and latency, end to end",
        "",
        "Generated by `make bench` (`bench/run.py`); every figure and the findings below come "
        "from one run.",
        "",
        f"- date: {machine['date']}{QUICK_NOTE if machine.get('quick') == 'yes' else ''}",
        f"- machine: {machine['cpu']}, {machine['cores']} cores ({machine['available']} "
        "available to the run)",
        f"- versions: custody {machine['commit']}; Python {machine['python']}; SoftHSM "
        f"{machine['softhsm']}; SQLite {machine['sqlite']}; PostgreSQL {machine['postgres']}",
        "- load average (1, 5, 15 min) when the benchmark started: "
        f"{machine['load']}; each run's own is in its table (a busy machine shows there, and in "
        '"other work" below)',
        "- set-up: a fresh `custody init` + `custody demo seed` per database (the development "
        "SoftHSM2 token; PostgreSQL at 127.0.0.1:5432 in a database of its own, copied fresh "
        "for every run, dropped afterwards), `custody serve` (rate limits raised for the one "
        "benchmark client)",
        "- clients: threads of the benchmark's own process, on the same machine as the server, "
        "the database and the HSM (their CPU counts against the server's); each sends a signed "
        "withdrawal and then long polls (`GET /v1/requests/{id}?wait=…&seen=…`, the SDK's "
        "`wait(created)`, no sleep) until it is signed, then sends the next; latency under load "
        "is each request's create-to-signed in that loop",
        "- raw: PyKCS11 secp256k1 signs per second in one process on the same token, measured "
        "just before each database's runs; ratio = withdrawals signed end to end per second / "
        "raw signs per second",
    ]
    if "took" in machine:
        lines.append(f"- the whole benchmark took {machine['took']}")
    lines.extend(f"- not run: {reason}" for reason in skipped)
    if defaults:
        lines.extend(["", "### `custody serve` with its default processes", ""])
        lines.extend(_defaults_table(defaults))
        lines.append("")
        lines.extend(_goals(defaults))
    if scaling:
        lines.extend(["", "### Scaling on PostgreSQL: API processes by signer processes", ""])
        lines.extend(_scaling_table(scaling))
        if len(scaling) > 1:  # one cell (`--processes 1`) has nothing to compare
            lines.append("")
            lines.extend(_scaling_summary(scaling))
    runs = [*defaults, *scaling]
    if runs:
        lines.extend(["", "### Where the time went", ""])
        lines.extend(_time_table(runs))
        lines.extend(["", "### What limits it", ""])
        lines.extend(_findings(defaults, scaling))
    return "\n".join(lines)


def _defaults_table(runs: Sequence[Run]) -> list[str]:
    rows = [
        "| database | API + signer processes | load at start | raw signs/s | accepted/s | "
        "signed/s | ratio | one at a time p50 / p99 (ms) | under load p50 / p99 (ms) |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        low = run.low_load
        low_text = f"{_ms(low.p50_ms)} / {_ms(low.p99_ms)}" if low else "not measured"
        rows.append(
            f"| {run.database} | {run.processes} | {_load(run.load)} | "
            f"{run.raw_signs_per_second:,.0f} | {run.posts_per_second:,.1f} | "
            f"{run.signed_per_second:,.1f} | {run.ratio:.3f} | {low_text} | "
            f"{_ms(run.p50_ms)} / {_ms(run.p99_ms)} |"
        )
    counts = runs[0]
    low = counts.low_load
    rows.extend(
        [
            "",
            f"Under load: {counts.requests} withdrawals from {counts.concurrency} client threads. "
            + (
                f"One at a time: {low.requests} withdrawals, before the load on the same server."
                if low
                else ""
            ),
        ]
    )
    return rows


def _goals(runs: Sequence[Run]) -> list[str]:
    lines = ["Issue 15's goals:", ""]
    for run in runs:
        low = run.low_load
        parts = [f"ratio {run.ratio:.3f} ≥ {RATIO_GOAL}: {_met(run.ratio >= RATIO_GOAL)}"]
        if low:
            parts.append(
                f"p50 one at a time {_ms(low.p50_ms)} ms ≤ {LOW_LOAD_P50_GOAL_MS:.0f}: "
                f"{_met(low.p50_ms <= LOW_LOAD_P50_GOAL_MS)}"
            )
            parts.append(
                f"p99 one at a time {_ms(low.p99_ms)} ms ≤ {LOW_LOAD_P99_GOAL_MS:.0f}: "
                f"{_met(low.p99_ms <= LOW_LOAD_P99_GOAL_MS)}"
            )
        parts.append(
            f"p99 under load {_ms(run.p99_ms)} ms ≤ {UNDER_LOAD_P99_GOAL_MS:.0f} (at the ratio "
            f"goal's throughput; here at {run.signed_per_second:,.1f}/s): "
            f"{_met(run.p99_ms <= UNDER_LOAD_P99_GOAL_MS)}"
        )
        lines.append(f"- {run.database}: " + "; ".join(parts))
    return lines


def _scaling_table(runs: Sequence[Run]) -> list[str]:
    rows = [
        "| API processes | signer processes | load at start | signed/s | ratio | "
        "p50 (ms) | p99 (ms) | machine CPU busy |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows.extend(
        f"| {run.api} | {run.signers} | {_load(run.load)} | {run.signed_per_second:,.1f} | "
        f"{run.ratio:.3f} | {_ms(run.p50_ms)} | {_ms(run.p99_ms)} | {run.cpu.busy:.0%} |"
        for run in runs
    )
    first = runs[0]
    rows.extend(
        [
            "",
            f"Each: {first.requests} withdrawals from {first.concurrency} client threads against "
            f"a fresh copy of the seeded database; raw signs/s {first.raw_signs_per_second:,.0f}.",
        ]
    )
    return rows


def _series(runs: Sequence[Run], *, api: int | None = None, signers: int | None = None) -> str:
    chosen = [
        run
        for run in runs
        if (api is None or run.api == api) and (signers is None or run.signers == signers)
    ]
    return ", ".join(f"{run.signed_per_second:,.1f}" for run in chosen)


def _scaling_summary(runs: Sequence[Run]) -> list[str]:
    base = min(runs, key=lambda run: (run.api, run.signers))
    best = max(runs, key=lambda run: run.signed_per_second)
    apis = sorted({run.api for run in runs})
    signers = sorted({run.signers for run in runs})
    grows = best.signed_per_second >= 1.15 * base.signed_per_second
    return [
        f"- signed/s with {base.signers} signer process{'es' if base.signers > 1 else ''} and "
        f"{', '.join(map(str, apis))} API processes: {_series(runs, signers=base.signers)}",
        f"- signed/s with {base.api} API process{'es' if base.api > 1 else ''} and "
        f"{', '.join(map(str, signers))} signer processes: {_series(runs, api=base.api)}",
        f"- the best, {best.processes} processes, signs {best.signed_per_second:,.1f}/s: "
        f"{best.signed_per_second / base.signed_per_second:.2f} times {base.processes}; "
        + (
            "throughput grows with processes here"
            if grows
            else "throughput does not grow with processes here (less than 15 % over "
            f"{base.processes})"
        )
        + f" on {best.cpu.cores:.0f} cores, clients included",
    ]


def _time_table(runs: Sequence[Run]) -> list[str]:
    rows = [
        "CPU milliseconds per signed request during each run under load, by part (from "
        "`/proc/PID/stat` of the server's process tree, of the PostgreSQL backends serving "
        "its database, and of the benchmark's own process; the machine's from `/proc/stat`), "
        "and PostgreSQL's `pg_stat_database` counts per request over the server's whole run "
        '(SQLite has no such counter here). "Other work" is the rest of the machine\'s busy '
        "CPU: other jobs, PostgreSQL's own background processes, the kernel's share not charged "
        "to a process:",
        "",
        "| run | machine CPU busy | API | signer | background, supervisor | PostgreSQL | "
        "clients | other work | busiest process (of one core) | transactions / request | "
        "rows written / request | rows read / request | table scans / request: sequential, "
        "by index |",
        "| --- " + "| ---: " * 7 + "| --- " + "| ---: " * 4 + "|",
    ]
    for run in runs:
        cpu, per = run.cpu, run.per_request_ms
        postgres = _ms(per(cpu.postgres)) if cpu.postgres is not None else "(in server)"
        sql = run.sql
        if sql and sql.requests:
            counts = (
                f"{sql.transactions / sql.requests:.1f} | {sql.rows_written / sql.requests:.1f} | "
                f"{sql.rows_read / sql.requests:.0f} | "
                f"{sql.sequential_scans / sql.requests:.1f}, {sql.index_scans / sql.requests:.1f}"
            )
        else:
            counts = "- | - | - | -"
        rows.append(
            f"| {_name(run)} | {cpu.busy:.0%} | {_ms(per(cpu.api))} | {_ms(per(cpu.signer))} | "
            f"{_ms(per(cpu.background))} | {postgres} | {_ms(per(cpu.clients))} | "
            f"{_ms(per(cpu.others))} | {cpu.busiest} ({cpu.busiest_share:.0%}) | {counts} |"
        )
    return rows


def _name(run: Run) -> str:
    # The default runs alone measured latency one at a time: that tells them from the grid's.
    return f"{run.database} {run.processes}{' (defaults)' if run.low_load else ''}"


def _findings(defaults: Sequence[Run], scaling: Sequence[Run]) -> list[str]:
    lines = []
    for run in defaults:
        finding = limiting(run)
        lines.append(
            f"- **{run.database}, default processes ({run.processes})**: {finding.text} "
            f"{_hsm(run)}{_statements(run)} Next step: {finding.next_step}."
        )
    if scaling:
        best = max(scaling, key=lambda run: run.signed_per_second)
        finding = limiting(best)
        kinds = sorted({limiting(run).limit for run in scaling})
        lines.append(
            f"- **PostgreSQL scaling, at its best ({best.processes})**: {finding.text} "
            f"{_hsm(best)}{_statements(best)} Limits across the grid: {', '.join(kinds)}. "
            "Next step: "
            f"{finding.next_step}."
        )
    return lines


def _statements(run: Run) -> str:
    sql = run.sql
    if sql is None or not sql.requests:
        return ""
    text = (
        f" PostgreSQL, per request: {sql.transactions / sql.requests:.1f} transactions, "
        f"{sql.sequential_scans / sql.requests:.1f} sequential and "
        f"{sql.index_scans / sql.requests:.1f} index scans of tables, "
        f"{sql.rows_read / sql.requests:,.0f} rows read."
    )
    if sql.most_scanned and sql.most_scanned_rows:
        text += (
            f" Sequential scans of `{sql.most_scanned}` read the most rows: "
            f"{sql.most_scanned_rows / sql.requests:,.0f} per request."
        )
    return text


def _hsm(run: Run) -> str:
    if run.ratio >= SATURATED:
        return "The HSM is near its one-process rate."
    return (
        f"The HSM is not the limit: signing {run.signed_per_second:,.1f}/s kept it busy "
        f"{run.ratio:.0%} of the run ({1000 / run.raw_signs_per_second:.2f} ms a signature in one "
        "process)."
    )


def write_report(path: Path, body: str) -> None:
    """Put `body` between the end-to-end markers in `path`, replacing an earlier run's."""
    replace_section(path, "end-to-end", body)


def replace_section(path: Path, name: str, body: str) -> None:
    """Put `body` between `<!-- name -->` markers in `path`, replacing an earlier run's."""
    mark = f"<!-- {name} -->"
    section = f"{mark}\n{body}\n{mark}"
    text = path.read_text() if path.exists() else HEADER
    if mark in text:
        before, _, rest = text.partition(mark)
        _, _, after = rest.partition(mark)
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
