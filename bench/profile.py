"""Where the CPU of a signed request goes, by sampling the server under load (issue 15).

    make profile                                     # SQLite, 600 withdrawals
    .venv/bin/python -m bench.profile --database postgres --requests 300

`custody serve` with its default processes takes the same load as `make bench` (client threads
that send a withdrawal and long poll until it is signed) while py-spy samples each API and
signer process, counting only the moments a thread holds the GIL: Python's CPU, never its
waits. Those samples give each step's share; the milliseconds are the processes' own CPU
time over the run (/proc), split by those shares (a sampler on a busy machine misses samples,
the kernel's count does not). The summary goes between the `<!-- profile -->` markers of
docs/benchmarks.md: CPU per signed request by step of the request's way, and by the package
whose code was running (custody's own, SQLAlchemy, the HTTP stack, ...), which says what a
rewrite of each would buy.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bench import run, usage
from bench.client import BenchClient
from bench.report import replace_section

ROOT = Path(__file__).resolve().parents[1]
PY_SPY = str(Path(sys.executable).with_name("py-spy"))
RATE = 250  # samples per second and thread
WARM_UP = 30  # requests before sampling: imports, caches and pools settle first

# Steps of a request's way through each kind of process, by the first of their functions a
# sample's stack passes through (outermost first). Unmatched samples are "other".
STEPS: dict[str, tuple[tuple[str, str], ...]] = {
    "api": (
        ("authentication (token, client, nonce)", "_authenticate"),
        ("create: decode the body", "_decode"),
        ("create: decide and store (write lock held)", "_decide_and_store"),
        ("create: the rest of intake", "submit"),
        ("long poll: the status, and the view once it moved", "get_request.<locals>.news"),
        ("read: the request's view (a poll with no news)", "get_request.<locals>.read"),
    ),
    "signer": (
        ("claim: the signed evidence re-derived", "_checked_evidence"),
        ("claim: policy and approvals checked again", "_recheck_allows"),
        ("claim: configuration seal", "ConfigurationGate.check"),
        ("claim: freezes, queue, the rest", "claim_batch"),
        ("sign in the HSM (PKCS#11) and check", "SignerWorker._sign"),
        ("record the results", "SignerWorker._sign_and_record"),
    ),
}
# What runs between the socket and the route, or the signer's loop around its steps.
FRAMEWORK = {"api": "HTTP server, framework, thread hand-offs", "signer": "the loop around them"}

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


@dataclass(frozen=True)
class Profile:
    """One process kind's samples: by step, and by the package running at the sample."""

    role: str
    samples: int
    by_step: Counter[str]
    by_package: Counter[str]
    cpu_seconds: float = 0.0
    """What the processes of this kind used meanwhile (/proc): the samples give the shares."""


def parse(lines: Iterable[str], role: str) -> Profile:
    """py-spy's raw output (`frame;frame;... count`, outermost first) summed by step and by
    the package of the innermost frame."""
    by_step: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    total = 0
    steps = STEPS[role]
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_parsed(frame) for frame in stack.split(";")]
        functions = {function for function, _ in frames}
        step = next((name for name, marker in steps if marker in functions), FRAMEWORK[role])
        by_step[step] += n
        by_package[package_of(frames[-1][1])] += n
    return Profile(role, total, by_step, by_package)


def _parsed(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame)
    return (match["function"], match["file"]) if match else (frame, "")


def package_of(file: str) -> str:
    """The top-level package of a frame's file as py-spy names it (a path below
    site-packages, or the standard library's, or an absolute one)."""
    if not file or file.startswith("<"):
        return "Python itself (imports, generated code)"
    parts = Path(file).parts
    if "custody" in parts:
        return "custody"
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    elif any(re.fullmatch(r"python3\.\d+", part) for part in parts):
        return STDLIB  # an absolute path into the interpreter's own library
    first = parts[0] if parts else file
    if first.removesuffix(".py") in sys.stdlib_module_names:
        return STDLIB
    return _GROUPS.get(first, first)


STDLIB = "the standard library (threads, asyncio, json, ...)"
_GROUPS = {
    "starlette": "HTTP stack (uvicorn, h11, starlette, fastapi, anyio)",
    "fastapi": "HTTP stack (uvicorn, h11, starlette, fastapi, anyio)",
    "uvicorn": "HTTP stack (uvicorn, h11, starlette, fastapi, anyio)",
    "h11": "HTTP stack (uvicorn, h11, starlette, fastapi, anyio)",
    "anyio": "HTTP stack (uvicorn, h11, starlette, fastapi, anyio)",
    "sqlalchemy": "SQLAlchemy",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "eth_account": "eth-account, eth-utils, rlp, py_ecc",
    "eth_utils": "eth-account, eth-utils, rlp, py_ecc",
    "eth_keys": "eth-account, eth-utils, rlp, py_ecc",
    "eth_abi": "eth-account, eth-utils, rlp, py_ecc",
    "rlp": "eth-account, eth-utils, rlp, py_ecc",
    "py_ecc": "eth-account, eth-utils, rlp, py_ecc",
    "jwt": "PyJWT, cryptography",
    "cryptography": "PyJWT, cryptography",
    "PyKCS11": "PyKCS11 (the HSM calls)",
    "psycopg": "psycopg",
    "rfc8785": "rfc8785",
}


def render(facts: dict[str, str], profiles: list[Profile], requests: int) -> str:
    lines = [
        "## Where the CPU of a signed request goes (sampled)",
        "",
        "Generated by `make profile` (`bench/profile.py`): py-spy sampled every API and signer "
        f"process of `custody serve` ({facts['database']}, default processes) {RATE} times a "
        "second while "
        f"{requests} withdrawals were signed under the load of `make bench` "
        f"({facts['concurrency']} client threads, each sending and long polling), counting only "
        "samples where a thread held the GIL: Python's CPU, not its waits for locks, disk or "
        "the network. Each step's milliseconds per signed request are the processes' measured "
        "CPU time (/proc) split by its share of the samples.",
        "",
        f"- date: {facts['date']}; commit {facts['commit']}; {facts['cpu']}, {facts['cores']} "
        f"cores; load average at the start {facts['load']}",
        f"- throughput while sampled: {facts['signed']} signed/s (sampling slows the processes "
        "it reads: compare with `make bench`, not with these)",
        "",
    ]
    for profile in profiles:
        cpu_ms = 1000 * profile.cpu_seconds / requests
        per = cpu_ms / profile.samples if profile.samples else 0.0
        lines += [
            f"### {profile.role.capitalize()} processes: {cpu_ms:.1f} ms of CPU per signed "
            f"request ({profile.samples:,} samples holding the GIL)",
            "",
            "| step | ms | share |",
            "| --- | ---: | ---: |",
        ]
        order = [name for name, _ in STEPS[profile.role]] + [FRAMEWORK[profile.role]]
        for name in order:
            n = profile.by_step.get(name, 0)
            lines.append(f"| {name} | {n * per:.2f} | {_share(n, profile.samples)} |")
        lines += ["", "| code running (innermost frame) | ms | share |", "| --- | ---: | ---: |"]
        for name, n in profile.by_package.most_common(8):
            lines.append(f"| {name} | {n * per:.2f} | {_share(n, profile.samples)} |")
        rest = profile.samples - sum(n for _, n in profile.by_package.most_common(8))
        if rest:
            share = _share(rest, profile.samples)
            lines.append(f"| everything else | {rest * per:.2f} | {share} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def _share(n: int, total: int) -> str:
    return f"{100 * n / total:.0f}%" if total else "-"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--postgres", default=run.POSTGRES_ADMIN_URL, help="admin database URL")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    if not Path(PY_SPY).exists():
        sys.exit(f"py-spy is not installed at {PY_SPY} (the dev extra has it: make venv)")
    postgres = None
    with tempfile.TemporaryDirectory(prefix="custody-profile-") as folder:
        home = Path(folder) / "home"
        url = None
        if args.database == "postgres":
            postgres = run.Postgres(args.postgres, f"custody_profile_{os.urandom(4).hex()}")
            url = postgres.url(postgres.create(f"{postgres.prefix}_db"))
        try:
            run.log(f"{args.database}: custody init + demo seed")
            run.custody(home, "init", database_url=url)
            run.custody(home, "demo", "seed", database_url=url)
            facts = {
                **run.machine_facts(postgres),
                "database": "SQLite" if args.database == "sqlite" else "PostgreSQL",
                "concurrency": str(args.concurrency),
            }
            profiles, signed = _sampled(home, url, args.requests, args.concurrency, Path(folder))
            facts["signed"] = f"{signed:.1f}"
        finally:
            if postgres is not None:
                postgres.drop_all()
    replace_section(args.output, "profile", render(facts, profiles, args.requests))
    run.log(f"written to {args.output}")


def _sampled(
    home: Path, url: str | None, requests: int, concurrency: int, folder: Path
) -> tuple[list[Profile], float]:
    with run.serving(home, url, None, None) as server:
        client = BenchClient.from_home(home, server.base)
        client.run(WARM_UP, min(concurrency, WARM_UP), first_nonce=10**6)
        roles = {
            pid: role
            for pid, role in usage.roles(server.log).items()
            if role.startswith(("api", "signer"))
        }
        spies = {
            pid: subprocess.Popen(
                [
                    *(PY_SPY, "record", "--gil", "--nonblocking", "--format", "raw"),
                    *("--rate", str(RATE), "--pid", str(pid)),
                    *("--output", str(folder / f"{role}.txt")),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for pid, role in roles.items()
        }
        time.sleep(1.0)  # py-spy attaches
        run.log(f"sampling {', '.join(sorted(roles.values()))} under {requests} withdrawals")
        before = usage.cpu_seconds(roles)
        result = client.run(requests, concurrency)
        spent = usage.used(before, usage.cpu_seconds(roles))
        for spy in spies.values():
            spy.send_signal(signal.SIGINT)
        for pid, spy in spies.items():
            _, err = spy.communicate(timeout=60)
            if not (folder / f"{roles[pid]}.txt").exists():
                sys.exit(f"py-spy could not sample {roles[pid]}: {err.decode(errors='replace')}")
    merged: dict[str, list[str]] = {}
    cpu: Counter[str] = Counter()
    for pid, role in roles.items():
        kind = role.split("-", 1)[0]
        merged.setdefault(kind, []).extend(
            (folder / f"{role}.txt").read_text(errors="replace").splitlines()
        )
        cpu[kind] += spent.get(pid, 0.0)
    profiles = [
        dataclasses.replace(parse(merged[kind], kind), cpu_seconds=cpu[kind])
        for kind in ("api", "signer")
    ]
    return profiles, result.signed_per_second


if __name__ == "__main__":
    main()
