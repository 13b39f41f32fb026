"""Rate limits over real HTTP, as `custody serve` runs them (`ServerConfig`, uvicorn, a free port
of 127.0.0.1): a client on the same host cannot pose as many by sending `X-Forwarded-For`.

uvicorn on its own believes that header from any peer on 127.0.0.1 and makes it the client
address; `custody serve` turns that off, so only CUSTODY_TRUSTED_PROXIES are believed.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from custody.app import create_app
from custody.http.serving import ServerConfig
from custody.runtime import Runtime
from tests.support.installation import Installation

pytestmark = [
    pytest.mark.slow,
    # what is tested is the HTTP server, the same whatever the database
    pytest.mark.parametrize("installation", ["sqlite"], indirect=True),
]


@pytest.fixture
def base(installation: Installation) -> Iterator[str]:
    settings = installation.settings.model_copy(
        update={"rate_limit_address_per_second": 0.01, "rate_limit_address_burst": 3}
    )
    runtime = Runtime(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = ServerConfig(
        create_app(runtime, run_worker=False), settings, host="127.0.0.1", port=port
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        runtime.close()


def test_x_forwarded_for_from_localhost_does_not_make_new_sources(base: str) -> None:
    with httpx.Client(base_url=base, timeout=10) as http:
        answers = [
            http.get("/v1/ledger/checkpoint", headers={"X-Forwarded-For": f"203.0.113.{n}"})
            for n in range(4)
        ]
        assert [a.status_code == 429 for a in answers] == [False, False, False, True]
        refused = answers[-1]
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) >= 1
        assert http.get("/healthz").status_code == 200
        assert http.get("/app/login").status_code == 429
