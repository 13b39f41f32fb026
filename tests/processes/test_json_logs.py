"""`custody serve` with CUSTODY_LOG_FORMAT=json: every process writes JSON lines, and the lines an
API process writes while serving a call name the call's X-Request-Id."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.process import custody_env
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation
from tests.support.tree import Tree, free_port, start

pytestmark = pytest.mark.slow

ROLES = ("api-1", "signer-1", "background")


@pytest.fixture(scope="module")
def server(home: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    port = free_port()
    env = custody_env(home.env, CUSTODY_LOG_FORMAT="json")
    log = tmp_path_factory.mktemp("json-logs") / "serve.log"
    argv = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    tree = start(argv, env, log, roles=ROLES, port=port)
    try:
        yield tree
    finally:
        tree.stop()


def _records(tree: Tree) -> list[dict[str, Any]]:
    # stdout is in the same file: `custody serve` says in two plain lines where it serves and
    # which processes it runs; everything else is JSON.
    lines = [line for line in tree.output().splitlines() if line.strip()]
    plain = [line for line in lines if not line.startswith("{")]
    assert len(plain) == 2, plain
    assert plain[0].startswith("custody serving on "), plain
    assert "API process" in plain[1], plain
    return [json.loads(line) for line in lines if line.startswith("{")]


def test_serve_writes_json_lines_naming_the_call(server: Tree, home: Installation) -> None:
    call_id = f"json-e2e-{uuid.uuid4()}"
    with httpx.Client(base_url=server.url, timeout=30) as http:
        api = Api(http.request, home.client())
        body = json.dumps(withdrawal(home.wallet().name)).encode()
        headers = {"Idempotency-Key": str(uuid.uuid4()), "X-Request-Id": call_id}
        created = api.call("POST", "/v1/requests", body, headers=headers)
        assert created.status_code == 201, created.text
        assert created.headers["X-Request-Id"] == call_id

    deadline = time.monotonic() + 30
    while not [r for r in _records(server) if r.get("request_id") == call_id]:
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)
    records = _records(server)
    assert {r["process"] for r in records} >= {"supervisor", *ROLES}
    (access,) = [r for r in records if r.get("request_id") == call_id]
    assert access["process"] == "api-1"
    assert access["logger"] == "custody.http.access"
    assert access["message"].startswith("POST /v1/requests 201 ")
    assert access["level"] == "INFO"
    # Lines written outside any call (starting, signing) name none.
    assert not [r for r in records if r["process"] != "api-1" and "request_id" in r]
