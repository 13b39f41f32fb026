"""Every HTTP call has an id (X-Request-Id): in the answer, in every log line written while it is
served, in the ledger entry of the request it creates and in that request's webhooks."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from custody.http import problems
from custody.http.callid import CallId
from custody.processes import logs
from custody.settings import LogFormat
from custody.signing.worker import SignerWorker
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, WalletInfo
from tests.webhooks.conftest import Pump, Receiver
from tests.webhooks.helpers import service_key, set_client_url, verified

NEW_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """What the root logger writes, as `custody serve` writes it with CUSTODY_LOG_FORMAT=json."""
    stream = io.StringIO()
    handler = logs.handler("api", LogFormat.JSON)
    handler.setStream(stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _create(api: Api, wallet: WalletInfo, call_id: str, amount: str = "1000") -> str:
    body = json.dumps(withdrawal(wallet.name, amount=amount)).encode()
    headers = {"Idempotency-Key": str(uuid.uuid4()), "X-Request-Id": call_id}
    created = api.call("POST", "/v1/requests", body, headers=headers)
    assert created.status_code == 201, created.text
    assert created.headers["X-Request-Id"] == call_id
    request_id: str = created.json()["id"]
    return request_id


def test_a_sane_caller_id_comes_back_and_anything_else_gets_a_new_one(api: Api) -> None:
    given = f"desk-1:{uuid.uuid4()}"
    answer = api.call("GET", "/v1/requests", headers={"X-Request-Id": given})
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Request-Id"] == given

    fresh = api.call("GET", "/v1/requests").headers["X-Request-Id"]
    assert NEW_ID.fullmatch(fresh)
    assert api.call("GET", "/v1/requests").headers["X-Request-Id"] != fresh

    for insane in ("two words", "x" * 129, "-starts-with-a-dash", "a\tb", 'quote"d', "ünï"):
        sent = insane.encode("utf-8")
        replaced = api.send("GET", "/healthz", headers=[(b"X-Request-Id", sent)])
        assert replaced.status_code == 200
        assert NEW_ID.fullmatch(replaced.headers["X-Request-Id"]), insane


def test_refusals_carry_an_id_too(api: Api) -> None:
    refused = api.call("GET", "/v1/requests", token="not-a-token", headers={"X-Request-Id": "r-1"})
    assert refused.status_code == 401
    assert refused.headers["X-Request-Id"] == "r-1"
    assert refused.headers.get_list("X-Request-Id") == ["r-1"]


def test_every_log_line_of_a_call_carries_its_id_as_json(json_log: io.StringIO) -> None:
    """From the event loop and from the worker thread a sync endpoint runs in; an error no
    handler answered too (its 500 carries the id)."""
    app = FastAPI()
    problems.install(app)
    app.add_middleware(CallId)
    inside = logging.getLogger("custody.test")

    @app.get("/work")
    def work() -> dict[str, str]:
        inside.info("working in a thread")
        return {}

    @app.get("/fail")
    def fail() -> dict[str, str]:
        raise RuntimeError("broken")

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/work", headers={"X-Request-Id": "call-a"}).status_code == 200
        failed = client.get("/fail", headers={"X-Request-Id": "call-b"})
    assert failed.status_code == 500
    assert failed.headers["X-Request-Id"] == "call-b"

    lines = _lines(json_log)
    by_message = {line["message"]: line for line in lines}
    worked = by_message["working in a thread"]
    assert worked["request_id"] == "call-a"
    assert worked["process"] == "api"
    assert worked["logger"] == "custody.test"
    assert worked["level"] == "INFO"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", worked["time"])
    (access,) = [line for line in lines if line["message"].startswith("GET /work 200 ")]
    assert access["request_id"] == "call-a"
    assert access["logger"] == "custody.http.access"
    crash = next(line for line in lines if line["message"].startswith("unhandled error"))
    assert crash["request_id"] == "call-b"
    assert "RuntimeError: broken" in crash["exception"]
    assert [
        line["request_id"] for line in lines if line["message"].startswith("GET /fail 500 ")
    ] == ["call-b"]
    # Every line the server wrote names a call (the test client's own lines name none).
    served = [line for line in lines if line["logger"] != "httpx"]
    assert {line.get("request_id") for line in served} == {"call-a", "call-b"}


def test_a_line_outside_any_call_has_no_id(json_log: io.StringIO) -> None:
    logging.getLogger("custody.test").warning("between calls")
    (line,) = _lines(json_log)
    assert "request_id" not in line
    assert line["message"] == "between calls"


def test_the_request_a_call_creates_records_its_id_in_the_ledger(
    api: Api, wallet: WalletInfo, installation: Installation, json_log: io.StringIO
) -> None:
    call_id = f"trade-{uuid.uuid4()}"
    request_id = _create(api, wallet, call_id)

    (entry,) = [
        e
        for e in installation.ledger_entries("request.created")
        if e["data"]["request"] == request_id
    ]
    assert entry["data"]["http_request_id"] == call_id
    access = [line for line in _lines(json_log) if line["message"].startswith("POST /v1/requests")]
    assert [line["request_id"] for line in access] == [call_id]


def test_a_replay_keeps_the_first_calls_id(
    api: Api, wallet: WalletInfo, installation: Installation
) -> None:
    body = json.dumps(withdrawal(wallet.name, amount="1001")).encode()
    key = str(uuid.uuid4())
    first = api.call(
        "POST", "/v1/requests", body, headers={"Idempotency-Key": key, "X-Request-Id": "first"}
    )
    again = api.call(
        "POST", "/v1/requests", body, headers={"Idempotency-Key": key, "X-Request-Id": "again"}
    )
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["X-Request-Id"] == "again"
    created = [
        e
        for e in installation.ledger_entries("request.created")
        if e["data"]["request"] == first.json()["id"]
    ]
    assert [e["data"]["http_request_id"] for e in created] == ["first"]


def test_every_webhook_of_the_request_carries_the_id_of_the_call_that_created_it(
    api: Api,
    wallet: WalletInfo,
    signer: SignerWorker,
    installation: Installation,
    receiver: Receiver,
    pump: Pump,
) -> None:
    set_client_url(installation, api.client.name, receiver.url)
    call_id = f"desk-7/{uuid.uuid4()}"
    request_id = _create(api, wallet, call_id)
    assert signer.drain() >= 1

    pump()

    key = service_key(api)
    bodies = [verified(r, key) for r in receiver.accepted if request_id.encode() in r.body]
    assert [b["event"] for b in bodies] == ["request.created", "request.signing", "request.signed"]
    assert [b["http_request_id"] for b in bodies] == [call_id] * 3
