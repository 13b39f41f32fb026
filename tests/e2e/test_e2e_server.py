"""The whole path over real HTTP: `custody serve` in its own process, its signer process, and
an EVM (eth-tester with py-evm) that did not make the transaction executing it.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
from eth_utils import to_checksum_address

from tests.e2e.process import CUSTODY, custody_env
from tests.support.api import Api, withdrawal
from tests.support.cli import invoke, ok_json
from tests.support.installation import Installation
from tests.support.metrics import scrape, value

pytestmark = pytest.mark.slow

FUNDING = 10**18
AMOUNT = 123_456_789_000_000
TIP = 10**9
TERMINAL = {"rejected", "expired", "cancelled", "failed"}


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(server: Server, deadline: float) -> None:
    last = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"custody serve exited with {server.process.returncode}:\n{server.output()}"
            )
        try:
            answer = httpx.get(f"{server.url}/readyz", timeout=2)
            if answer.status_code == 200:
                return
            last = f"{answer.status_code} {answer.text}"
        except httpx.TransportError as exc:
            last = repr(exc)
        time.sleep(0.1)
    pytest.fail(f"custody serve not ready in time (last: {last}):\n{server.output()}")


@pytest.fixture(scope="module")
def server(
    installation: Installation, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    port = _free_port()
    log = tmp_path_factory.mktemp(f"serve-{installation.backend}") / "serve.log"
    env = custody_env(installation.env, CUSTODY_WORKER_POLL_SECONDS="0.05")
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [CUSTODY, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    running = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_ready(running, time.monotonic() + 60)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture
def tester() -> Any:
    return EthereumTester(PyEVMBackend())


def _tester_chain(installation: Installation, chain_id: int) -> str:
    """The chain of this installation whose EIP-155 id is eth-tester's, added through the CLI."""
    env = installation.env
    for chain in ok_json(invoke(["chains", "list", "--json"], env)):
        if chain["evm_chain_id"] == chain_id:
            return str(chain["name"])
    name = f"ethtester-{installation.backend}"
    added = ok_json(invoke(["chains", "add", name, "--evm-chain-id", str(chain_id), "--json"], env))
    assert added["name"] == name
    assert added["evm_chain_id"] == chain_id
    listed = ok_json(invoke(["chains", "list", "--json"], env))
    assert {"name": name, "evm_chain_id": chain_id} in [
        {"name": c["name"], "evm_chain_id": c["evm_chain_id"]} for c in listed
    ]
    return name


def test_operations_endpoints(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        health = http.get("/healthz")
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}

        ready = http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"
        assert ready.json()["checks"] == {"database": "ok", "hsm": "ok"}

        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        assert "python_info" in metrics.text or "process_" in metrics.text

        openapi = http.get("/openapi.json")
        assert openapi.status_code == 200
        assert "/v1/requests" in openapi.json()["paths"]
        assert "post" in openapi.json()["paths"]["/v1/requests"]


def test_unauthenticated_call_is_a_problem_document(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        answer = http.get("/v1/requests")
    assert answer.status_code == 401
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["status"] == 401


def test_withdrawal_signed_by_the_server_executes_on_an_evm(
    server: Server, installation: Installation, tester: Any
) -> None:
    chain_id = tester.backend.chain.chain_id
    chain = _tester_chain(installation, chain_id)
    wallet = installation.wallet(chain=chain)
    client = installation.client()
    installation.allow_all_policy()

    funder = tester.get_accounts()[0]
    base_fee = tester.get_block_by_number("latest")["base_fee_per_gas"]
    tester.send_transaction(
        {
            "from": funder,
            "to": wallet.address,
            "value": FUNDING,
            "gas": 21000,
            "max_fee_per_gas": 2 * base_fee + TIP,
            "max_priority_fee_per_gas": TIP,
        }
    )
    assert tester.get_balance(wallet.address) == FUNDING

    recipient = to_checksum_address(Account.create().address)
    base_fee = tester.get_block_by_number("latest")["base_fee_per_gas"]
    body = withdrawal(
        wallet.name,
        amount=str(AMOUNT),
        nonce=tester.get_nonce(wallet.address),
        destination=recipient,
    )
    body["evm"]["max_fee_per_gas"] = str(2 * base_fee + TIP)
    body["evm"]["max_priority_fee_per_gas"] = str(TIP)

    with httpx.Client(base_url=server.url, timeout=10) as http:
        api = Api(http.request, client)
        created = api.create(body)
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]
        assert created.json()["policy"]["decision"] == "allow"

        deadline = time.monotonic() + 30
        while True:
            current = api.get(request_id)
            assert current.status_code == 200, current.text
            status = current.json()["status"]
            assert status not in TERMINAL, current.text
            if status == "signed":
                break
            assert time.monotonic() < deadline, f"still {status}:\n{server.output()}"
            time.sleep(0.05)

    result = current.json()["result"]
    raw = result["raw_transaction"]
    assert Account.recover_transaction(raw) == wallet.address

    tx_hash = tester.send_raw_transaction(raw)
    assert tx_hash.lower() == result["tx_hash"].lower()
    receipt = tester.get_transaction_receipt(tx_hash)
    assert receipt["status"] == 1
    assert tester.get_balance(recipient) == AMOUNT
    fee = receipt["gas_used"] * receipt["effective_gas_price"]
    assert tester.get_balance(wallet.address) == FUNDING - AMOUNT - fee

    signed = [
        e
        for e in installation.ledger_entries("request.signed")
        if e["data"]["request"] == request_id
    ]
    assert len(signed) == 1
    assert signed[0]["data"]["raw_transaction"] == raw

    # The API process answers for the signer process's work, read from the database.
    samples, _ = scrape(server.url)
    assert value(samples, "custody_metrics_database_up") == 1
    assert value(samples, "custody_requests", type="withdrawal", status="signed") >= 1
    assert value(samples, "custody_hsm_up", token=installation.settings.main_token_label) == 1


def test_sigterm_stops_the_server_cleanly(server: Server) -> None:
    """Last in this module: the server fixture is stopped here."""
    server.process.send_signal(signal.SIGTERM)
    try:
        code = server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"custody serve ignored SIGTERM:\n{server.output()}")
    output = server.output()
    assert "Traceback" not in output
    assert "stopped" in output, "the signer worker was not stopped"
    # A clean stop is exit status 0: `custody serve` must finish its own shutdown (closing the
    # runtime after uvicorn returns), not die by the re-raised SIGTERM (-15, shell status 143).
    assert code == 0, f"exit status {code}:\n{output}"
