"""Benchmarks, written to docs/benchmarks.md with the machine and the date.

    make bench            # or: .venv/bin/python -m bench.run [--requests N]

1. raw PyKCS11 secp256k1 signs per second in one process (the HSM's ceiling here);
2. signed withdrawals per second end to end: signed HTTP calls to a running `custody serve`
   (SQLite, its default processes), from the first POST until the last request reads `signed`;
3. create-to-signed latency as a client sees it, one request at a time, learning of the result
   by a long poll (`GET /v1/requests/{id}?wait=`), not a sleep.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.client import BenchClient, free_port, wait_ready
from bench.report import write_report

ROOT = Path(__file__).resolve().parents[1]
CUSTODY = str(Path(sys.executable).with_name("custody"))


def custody(home: Path, *args: str) -> str:
    env = _env(home)
    out = subprocess.run([CUSTODY, *args], env=env, check=True, capture_output=True, text=True)
    return out.stdout


# One client on one address sending far more than a trading desk would (every POST and a long
# poll from each thread): limits this roomy never refuse it, so the benchmark measures
# throughput; the buckets still run, at their usual cost.
BENCH_RATE_LIMITS = {
    f"CUSTODY_RATE_LIMIT_{kind}_{measure}": "1000000"
    for kind in ("ADDRESS", "CLIENT")
    for measure in ("PER_SECOND", "BURST")
}


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUSTODY_", "SOFTHSM2_"))}
    env["CUSTODY_HOME"] = str(home)
    env.update(BENCH_RATE_LIMITS)
    return env


def raw_signs_per_second(home: Path, count: int) -> float:
    os.environ["SOFTHSM2_CONF"] = str(home / "hsm" / "softhsm2.conf")
    from custody.hsm.devtoken import find_softhsm_module, read_pin_file
    from custody.hsm.pkcs11 import Pkcs11Token

    pin = read_pin_file(home / "hsm" / "pins.json")
    with Pkcs11Token(find_softhsm_module(), "custody-dev", pin) as token:
        digests = [secrets.token_bytes(32) for _ in range(count)]
        token.sign_secp256k1("hot-eth-key", digests[0])  # warm the handle cache
        start = time.perf_counter()
        for digest in digests:
            token.sign_secp256k1("hot-eth-key", digest)
        return count / (time.perf_counter() - start)


def end_to_end(home: Path, count: int, concurrency: int, latency_requests: int) -> dict[str, float]:
    port = free_port()
    server = subprocess.Popen(
        [CUSTODY, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base)
        client = BenchClient.from_home(home, base)
        # Latency first, on an idle server; then throughput (nonces after the latency run's).
        latency = client.latency(latency_requests, first_nonce=count)
        return {**client.run(count, concurrency), **latency}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--raw-signs", type=int, default=3000)
    parser.add_argument("--latency-requests", type=int, default=200)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="custody-bench-") as tmp:
        home = Path(tmp) / "home"
        print("setting up a fresh installation", file=sys.stderr)
        custody(home, "init")
        custody(home, "demo", "seed")
        print(f"raw PKCS#11: {args.raw_signs} secp256k1 signs", file=sys.stderr)
        raw = raw_signs_per_second(home, args.raw_signs)
        print(
            f"end to end: {args.requests} withdrawals, {args.concurrency} in flight",
            file=sys.stderr,
        )
        e2e = end_to_end(home, args.requests, args.concurrency, args.latency_requests)
    results = {"raw_signs_per_second": raw, **e2e, "ratio": e2e["signed_per_second"] / raw}
    machine = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "cpu": _cpu(),
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "softhsm": _softhsm_version(),
        "processes": _default_processes(),
        "load": load,
    }
    write_report(args.output, machine, results, args)
    for key, value in results.items():
        print(f"{key}: {value:,.2f}")


def _default_processes() -> str:
    """What `custody serve` with no flags runs on this machine with SQLite, as the run did."""
    from custody.processes.sizing import available_cores, default_processes

    api, signers = default_processes(available_cores(), sqlite=True)
    return f"{api} API and {signers} signer process{'' if signers == 1 else 'es'}"


def _cpu() -> str:
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


if __name__ == "__main__":
    main()
