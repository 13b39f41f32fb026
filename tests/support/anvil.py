"""A real development chain node for the tests: Foundry's anvil (chain id 31337).

`make anvil` installs it from npm into .tools/ (`make test` does first); CUSTODY_TEST_ANVIL names
another binary. Each node listens on a free port of 127.0.0.1 and mines every transaction at
once; `restart` stops it (anvil writes its state to --state on exit) and starts it again from
that state, on the same port: a node restart as a wallet's transactions see it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
INSTALLED = REPO / ".tools/anvil/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"
CHAIN_ID = 31337
# anvil's first development account (its well-known key), holding 10000 ETH on a fresh node.
DEV_ACCOUNT = "0xf39Fd6e51aad88F6F4ce6aB8827279cfFFb92266"
START_SECONDS = 20.0


def anvil_binary() -> Path:
    configured = os.environ.get("CUSTODY_TEST_ANVIL")
    path = Path(configured) if configured else INSTALLED
    if not path.exists():
        raise RuntimeError(f"anvil is not installed at {path}: run `make anvil` (npm) first")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Anvil:
    def __init__(
        self, workdir: Path, *, chain_id: int = CHAIN_ID, extra: tuple[str, ...] = ()
    ) -> None:
        self.workdir = workdir
        self.chain_id = chain_id
        self.extra = extra
        self.port = free_port()
        self.state = workdir / f"anvil-{self.port}.json"
        self.log = workdir / f"anvil-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(timeout=10)
        self._ids = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [
            str(anvil_binary()),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--state",
            str(self.state),
            *self.extra,
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"anvil exited: {self.log.read_text()[-2000:]}")
            try:
                self.rpc("eth_chainId")
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("anvil did not answer in time")

    def stop(self) -> None:
        """SIGTERM: anvil writes its state to --state, then exits."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self._http.close()

    # -- talking to it, independently of custody's own client --------------------------------

    def rpc(self, method: str, *params: Any) -> Any:
        self._ids += 1
        answer = self._http.post(
            self.url, json={"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}
        ).json()
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer["result"]

    def balance(self, address: str) -> int:
        return int(self.rpc("eth_getBalance", address, "latest"), 16)

    def nonce(self, address: str) -> int:
        return int(self.rpc("eth_getTransactionCount", address, "latest"), 16)

    def fund(self, address: str, wei: int) -> None:
        """Send `wei` from the development account (unlocked in anvil), mined at once."""
        tx_hash = self.rpc(
            "eth_sendTransaction", {"from": DEV_ACCOUNT, "to": address, "value": hex(wei)}
        )
        receipt = self.rpc("eth_getTransactionReceipt", tx_hash)
        if receipt is None:  # a node started with --no-mining
            self.mine()
            receipt = self.rpc("eth_getTransactionReceipt", tx_hash)
        assert receipt is not None
        assert int(receipt["status"], 16) == 1

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def deploy(self, bytecode: str) -> str:
        """Deploy init code from the development account; the contract's address."""
        tx_hash = self.rpc("eth_sendTransaction", {"from": DEV_ACCOUNT, "data": bytecode})
        receipt = self.rpc("eth_getTransactionReceipt", tx_hash)
        if receipt is None:
            self.mine()
            receipt = self.rpc("eth_getTransactionReceipt", tx_hash)
        assert int(receipt["status"], 16) == 1
        return str(receipt["contractAddress"])


@contextmanager
def running_anvil(workdir: Path, *, extra: tuple[str, ...] = ()) -> Iterator[Anvil]:
    """A started node, stopped (and its process gone) at the end: for module-scoped fixtures."""
    node = Anvil(workdir, extra=extra)
    node.start()
    try:
        yield node
    finally:
        node.close()
