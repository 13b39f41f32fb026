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

    def latency(self, count: int, first_nonce: int) -> dict[str, float]:
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
        return {
            "latency_requests": float(count),
            "latency_p50_ms": 1000 * seconds[len(seconds) // 2],
            "latency_p99_ms": 1000 * seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))],
        }

    def run(self, count: int, concurrency: int, first_nonce: int = 0) -> dict[str, float]:
        limits = httpx.Limits(max_connections=concurrency)
        with (
            httpx.Client(limits=limits, timeout=httpx.Timeout(30, read=60)) as http,
            ThreadPoolExecutor(concurrency) as pool,
        ):
            custody = self.sdk(http)
            start = time.perf_counter()
            nonces = range(first_nonce, first_nonce + count)
            created = list(pool.map(lambda n: self._post(custody, n), nonces))
            posted = time.perf_counter()
            list(pool.map(lambda request: self._await_signed(custody, request), created))
            done = time.perf_counter()
        return {
            "requests": float(count),
            "posts_per_second": count / (posted - start),
            "signed_per_second": count / (done - start),
        }
