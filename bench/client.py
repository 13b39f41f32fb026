"""A load-generating API client for the benchmarks: the client SDK, as a trading system uses it."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.report import Latency
from custody.client import Client, Request, load_private_key

DESTINATION = "0xe3139eABD9dCaDCDC9e6f2848Ef4AfD85Dc0c1B7"
# A benchmark must not hang on one lost request: no withdrawal of the run takes this long.
SIGNED_WITHIN_SECONDS = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(base: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {base} did not become ready")


def withdrawal(nonce: int) -> dict[str, Any]:
    return {
        "type": "withdrawal",
        "wallet": "hot-eth",
        "asset": "ETH",
        "amount": "1000",
        "destination": DESTINATION,
        "evm": {
            "nonce": nonce,
            "gas": 21000,
            "max_fee_per_gas": "30000000000",
            "max_priority_fee_per_gas": "1000000000",
        },
    }


@dataclass
class BenchClient:
    base: str
    client_id: str
    key: Ed25519PrivateKey

    @classmethod
    def from_home(cls, home: Path, base: str) -> BenchClient:
        key = load_private_key(home / "demo" / "client-private.pem")
        return cls(base, (home / "demo" / "client-id").read_text().strip(), key)

    def sdk(self, http: httpx.Client) -> Client:
        return Client(self.base, self.client_id, self.key, http=http)

    @staticmethod
    def _post(custody: Client, nonce: int) -> Request:
        return custody.create(withdrawal(nonce))

    @staticmethod
    def _await_signed(custody: Client, created: Request) -> None:
        """Long polls (`?wait=`, naming the status the create answered): the answer comes when
        the status changes, with no sleep here and no read before."""
        state = custody.wait(created, timeout=SIGNED_WITHIN_SECONDS, until="signed")
        if state.status != "signed":
            raise RuntimeError(f"{created.id} ended {state.status}")

    def latency(self, count: int, first_nonce: int) -> Latency:
        """Create-to-signed as a client sees it, one request at a time: from sending the POST
        to the long poll's answer that shows `signed` (milliseconds)."""
        seconds = []
        with httpx.Client(timeout=httpx.Timeout(10, read=60)) as http:
            custody = self.sdk(http)
            for nonce in range(first_nonce, first_nonce + count):
                start = time.perf_counter()
                self._await_signed(custody, self._post(custody, nonce))
                seconds.append(time.perf_counter() - start)
        seconds.sort()
        return Latency(count, 1000 * percentile(seconds, 0.5), 1000 * percentile(seconds, 0.99))

    def run(self, count: int, concurrency: int, first_nonce: int = 0) -> Throughput:
        """`concurrency` threads, each sending a withdrawal and long polling until it is signed,
        then the next: at most `concurrency` in flight, and each request's create-to-signed
        time is its latency under this load."""
        limits = httpx.Limits(max_connections=concurrency)
        with (
            httpx.Client(limits=limits, timeout=httpx.Timeout(30, read=60)) as http,
            ThreadPoolExecutor(concurrency) as pool,
        ):
            custody = self.sdk(http)

            def one(nonce: int) -> tuple[float, float, float]:
                sent = time.perf_counter()
                created = self._post(custody, nonce)
                posted = time.perf_counter()
                self._await_signed(custody, created)
                return sent, posted, time.perf_counter()

            start = time.perf_counter()
            times = list(pool.map(one, range(first_nonce, first_nonce + count)))
            done = time.perf_counter()
        latencies = sorted(signed - sent for sent, _, signed in times)
        last_posted = max(posted for _, posted, _ in times)
        return Throughput(
            requests=count,
            seconds=done - start,
            posts_per_second=count / (last_posted - start),
            signed_per_second=count / (done - start),
            p50_ms=1000 * percentile(latencies, 0.5),
            p99_ms=1000 * percentile(latencies, 0.99),
        )


@dataclass(frozen=True)
class Throughput:
    requests: int
    seconds: float
    posts_per_second: float
    signed_per_second: float
    p50_ms: float
    p99_ms: float


def percentile(ordered: list[float], fraction: float) -> float:
    """The value `fraction` of the way up an ordered list (nearest rank below)."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]
