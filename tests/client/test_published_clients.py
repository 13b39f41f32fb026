"""The clients we publish run as written against a real server that signs: the README tour, the
example script and the benchmark client each create a withdrawal on `hot-eth` and see it signed
by the wallet's key. A change to the API or the SDK cannot leave one of them behind."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from bench.client import BenchClient
from custody.client import Client, Request
from tests.support.installation import ClientKeys, Installation, WalletInfo

ROOT = Path(__file__).resolve().parents[2]
README_BASE = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def hot_eth(installation: Installation) -> WalletInfo:
    """The wallet the published clients name, as `custody demo seed` makes it."""
    return installation.wallet(name="hot-eth")


@pytest.fixture
def demo_files(tmp_path: Path, desk: ClientKeys) -> Path:
    """`var/demo/` as `custody demo seed` leaves it, in a directory of the test's own."""
    demo = tmp_path / "var" / "demo"
    demo.mkdir(parents=True)
    (demo / "client-id").write_text(desk.id + "\n")
    (demo / "client-private.pem").write_bytes(desk.private_pem())
    return tmp_path


def _signed_by(request: Request, wallet: WalletInfo) -> None:
    assert request.status == "signed", request.json
    assert request.result is not None
    assert Account.recover_transaction(request.result["raw_transaction"]) == wallet.address


def test_the_readme_tour_runs_as_written(
    live_url: str,
    hot_eth: WalletInfo,
    demo_files: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("```python\n", 1)[1].split("```", 1)[0]
    assert block.count(README_BASE) == 1
    monkeypatch.chdir(demo_files)
    namespace: dict[str, Any] = {}
    # Our own README, run as written; only its base URL is this test server's.
    try:
        exec(compile(block.replace(README_BASE, live_url), "README.md", "exec"), namespace)
        custody: Client = namespace["custody"]
        created: Request = namespace["created"]
        assert created.status == "approved"
        _signed_by(custody.get(created.id), hot_eth)
    finally:
        if "custody" in namespace:
            namespace["custody"].close()
    first_line = capsys.readouterr().out.splitlines()[0]
    assert first_line.startswith("approved rule small")


def test_the_example_script_runs(
    live_url: str,
    hot_eth: WalletInfo,
    demo_files: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    demo = demo_files / "var" / "demo"
    argv = ["withdraw.py", str(demo / "client-id"), str(demo / "client-private.pem"), live_url]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(ROOT / "examples" / "withdraw.py"), run_name="__main__")

    printed = capsys.readouterr().out
    last = json.loads(printed[printed.rindex("\n{") :])
    _signed_by(Request.from_json(last), hot_eth)


def test_the_benchmark_client_measures_signed_withdrawals(
    live_url: str, hot_eth: WalletInfo, desk: ClientKeys
) -> None:
    bench = BenchClient(live_url, desk.id, desk.private_key)
    latency = bench.latency(2, first_nonce=10**7)
    assert latency.requests == 2
    assert 0 < latency.p50_ms <= latency.p99_ms
    throughput = bench.run(3, concurrency=2, first_nonce=10**7 + 2)
    assert throughput.requests == 3
    assert 0 < throughput.p50_ms <= throughput.p99_ms

    with Client(live_url, desk.id, desk.private_key) as custody:
        requests = custody.list(limit=10).items
    assert len(requests) == 5
    for request in requests:
        _signed_by(request, hot_eth)
