"""A load-generating API client for the benchmarks (signed calls, like a trading system)."""

from __future__ import annotations

import hashlib
import json
import secrets
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DESTINATION = "0xe3139eABD9dCaDCDC9e6f2848Ef4AfD85Dc0c1B7"


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


@dataclass
class BenchClient:
    base: str
    client_id: str
    key: Ed25519PrivateKey

    @classmethod
    def from_home(cls, home: Path, base: str) -> BenchClient:
        key = serialization.load_pem_private_key(
            (home / "demo" / "client-private.pem").read_bytes(), password=None
        )
        assert isinstance(key, Ed25519PrivateKey)
        return cls(base, (home / "demo" / "client-id").read_text().strip(), key)

    def call(
        self,
        http: httpx.Client,
        method: str,
        uri: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        now = int(time.time())
        claims = {
            "sub": self.client_id,
            "uri": uri,
            "method": method,
            "bodyHash": hashlib.sha256(body).hexdigest(),
            "nonce": secrets.token_hex(16),
            "iat": now,
            "exp": now + 30,
        }
        if headers and "Idempotency-Key" in headers:
            claims["idempotencyKey"] = headers["Idempotency-Key"]  # the header is signed too
        token = jwt.encode(claims, self.key, algorithm="EdDSA")
        return http.request(
            method,
            self.base + uri,
            content=body,
            headers={"Authorization": f"Bearer {token}"} | (headers or {}),
        )

    def _post(self, http: httpx.Client, nonce: int) -> str:
        body = json.dumps(
            {
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
        ).encode()
        answer = self.call(
            http, "POST", "/v1/requests", body, {"Idempotency-Key": str(uuid.uuid4())}
        )
        answer.raise_for_status()
        return str(answer.json()["id"])

    def _await_signed(self, http: httpx.Client, request_id: str) -> None:
        """Long polls (`?wait=`): the answer comes when the status changes, with no sleep here."""
        while True:
            uri = f"/v1/requests/{request_id}?wait=10"
            state: dict[str, Any] = self.call(http, "GET", uri).json()
            if state["status"] == "signed":
                return
            if state["status"] not in ("approved", "signing"):
                raise RuntimeError(f"{request_id} ended {state['status']}")

    def latency(self, count: int, first_nonce: int) -> dict[str, float]:
        """Create-to-signed as a client sees it, one request at a time: from sending the POST
        to the long poll's answer that shows `signed` (milliseconds)."""
        seconds = []
        with httpx.Client(timeout=30) as http:
            for nonce in range(first_nonce, first_nonce + count):
                start = time.perf_counter()
                self._await_signed(http, self._post(http, nonce))
                seconds.append(time.perf_counter() - start)
        seconds.sort()
        return {
            "latency_requests": float(count),
            "latency_p50_ms": 1000 * seconds[len(seconds) // 2],
            "latency_p99_ms": 1000 * seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))],
        }

    def run(self, count: int, concurrency: int) -> dict[str, float]:
        limits = httpx.Limits(max_connections=concurrency)
        with (
            httpx.Client(limits=limits, timeout=30) as http,
            ThreadPoolExecutor(concurrency) as pool,
        ):
            start = time.perf_counter()
            ids = list(pool.map(lambda n: self._post(http, n), range(count)))
            posted = time.perf_counter()
            list(pool.map(lambda rid: self._await_signed(http, rid), ids))
            done = time.perf_counter()
        return {
            "requests": float(count),
            "posts_per_second": count / (posted - start),
            "signed_per_second": count / (done - start),
        }
