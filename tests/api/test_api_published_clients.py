"""The clients we publish follow the token contract: the README tour's `call`, the example script
and the benchmark client each create a request (signing its Idempotency-Key) and read it back.

A change to what a token must bind cannot leave one of them behind.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import secrets
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import jwt
from fastapi.testclient import TestClient as HttpClient

from bench.client import BenchClient
from tests.support.api import withdrawal
from tests.support.installation import ClientKeys, Installation, WalletInfo

ROOT = Path(__file__).resolve().parents[2]
README_BASE = "http://127.0.0.1:8000"
Call = Callable[[str, str, bytes, dict[str, str]], httpx.Response]


def _readme_call(http: HttpClient, client: ClientKeys) -> Call:
    """The tour's own `def call`, run as written; its fixed base URL is routed to the app."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("```python\n", 1)[1].split("```", 1)[0]
    source = block[block.index("def call(") : block.index("\nbody = ")]

    def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
        answer: httpx.Response = http.request(method, url.removeprefix(README_BASE), **kwargs)
        return answer

    namespace: dict[str, Any] = {
        "hashlib": hashlib,
        "jwt": jwt,
        "secrets": secrets,
        "time": time,
        "httpx": SimpleNamespace(request=request),
        "CLIENT_ID": client.id,
        "KEY": client.private_key,
    }
    exec(compile(source, "README.md", "exec"), namespace)  # our own README, run as written
    call: Call = namespace["call"]
    return call


def _example_call(live_url: str, client: ClientKeys) -> Call:
    spec = importlib.util.spec_from_file_location("withdraw_example", ROOT / "examples/withdraw.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def call(method: str, uri: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        answer: httpx.Response = module.call(
            live_url, client.id, client.private_key, method, uri, body, headers
        )
        return answer

    return call


def _bench_call(http: HttpClient, client: ClientKeys) -> Call:
    bench = BenchClient("", client.id, client.private_key)

    def call(method: str, uri: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return bench.call(http, method, uri, body, headers)

    return call


def _create_and_read(call: Call, wallet: WalletInfo) -> None:
    body = json.dumps(withdrawal(wallet.name, nonce=int(uuid.uuid4().int % 10**9))).encode()
    created = call("POST", "/v1/requests", body, {"Idempotency-Key": str(uuid.uuid4())})
    assert created.status_code == 201, created.text
    read = call("GET", f"/v1/requests/{created.json()['id']}", b"", {})
    assert read.status_code == 200, read.text


def test_the_readme_tour_client(
    http: HttpClient, installation: Installation, wallet: WalletInfo
) -> None:
    _create_and_read(_readme_call(http, installation.client()), wallet)


def test_the_example_script_client(
    live_url: str, installation: Installation, wallet: WalletInfo
) -> None:
    _create_and_read(_example_call(live_url, installation.client()), wallet)


def test_the_benchmark_client(
    http: HttpClient, installation: Installation, wallet: WalletInfo
) -> None:
    _create_and_read(_bench_call(http, installation.client()), wallet)
