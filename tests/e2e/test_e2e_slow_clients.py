"""Slow clients against `custody serve` (its own process, a free port): a connection that sends
nothing, or sends its request a byte at a time (slowloris), is closed once the configured request
timeout passed, while prompt clients are served. Raw sockets, because every HTTP client library
sends a whole request at once.

The test waits on the socket for the server to close it, with a generous bound; it never
asserts how long that took.
"""

from __future__ import annotations

import select
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.process import CUSTODY, custody_env
from tests.support.installation import Installation

pytestmark = [
    pytest.mark.slow,
    # what is tested is the HTTP server, the same whatever the database
    pytest.mark.parametrize("installation", ["sqlite"], indirect=True),
]

REQUEST_TIMEOUT = 1.0
KEEP_ALIVE = 1
# Far beyond REQUEST_TIMEOUT: only a server that never closes the connection reaches it.
GIVE_UP = 30.0
DRIBBLE_EVERY = 0.1


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"custody serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"custody serve did not start:\n{log.read_text()}")


@pytest.fixture(scope="module")
def port(installation: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = _free_port()
    log = tmp_path_factory.mktemp("slow-clients") / "serve.log"
    env = custody_env(
        installation.env,
        CUSTODY_HTTP_REQUEST_TIMEOUT_SECONDS=str(REQUEST_TIMEOUT),
        CUSTODY_HTTP_KEEP_ALIVE_SECONDS=str(KEEP_ALIVE),
    )
    argv = [CUSTODY, "serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv, env=env, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    try:
        _wait_ready(f"http://127.0.0.1:{port}", process, log)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def _closed_by_server(sock: socket.socket, dribble: bytes = b"") -> bytes:
    """Send `dribble` a byte at a time (then nothing) until the server closes the connection;
    returns what the server sent. Fails if it is still open after GIVE_UP seconds."""
    received = b""
    deadline = time.monotonic() + GIVE_UP
    pending = dribble
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], DRIBBLE_EVERY)
        try:
            if readable:
                chunk = sock.recv(4096)
                if not chunk:
                    return received
                received += chunk
            if pending:
                sock.sendall(pending[:1])
                pending = pending[1:]
        except (BrokenPipeError, ConnectionResetError):
            return received
    pytest.fail(f"the server kept a slow connection open for {GIVE_UP} s")


def _healthy(port: int) -> None:
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200


def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    with _connect(port) as sock:
        assert _closed_by_server(sock) == b""
    _healthy(port)


def test_a_client_that_dribbles_its_headers_is_closed(port: int) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 10_000
    with _connect(port) as sock:
        assert _closed_by_server(sock, head) == b""
    _healthy(port)


def test_a_client_that_dribbles_its_body_is_closed(port: int) -> None:
    head = (
        b"POST /v1/requests HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n"
    )
    with _connect(port) as sock:
        sock.sendall(head)
        received = _closed_by_server(sock, b"{" + b" " * 4998)
    # nothing was answered for a request that never arrived, or at most a refusal
    assert received == b"" or received.startswith(b"HTTP/1.1 4")
    _healthy(port)


def test_a_prompt_client_is_served_and_its_idle_connection_closed(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = _closed_by_server(sock)
    assert received.startswith(b"HTTP/1.1 200 ")
    assert received.endswith(b'{"status":"ok"}')


def test_an_oversized_request_head_is_refused(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000)
        received = _closed_by_server(sock)
    assert received.startswith(b"HTTP/1.1 400 ")
    _healthy(port)
