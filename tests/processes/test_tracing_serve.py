"""`custody serve` with tracing switched on the standard way (OTEL_EXPORTER_OTLP_ENDPOINT): each
process of the tree exports its spans over OTLP/HTTP to a collector on 127.0.0.1, which decodes
the protobuf as a real collector does. A withdrawal's call shows in the API process, its signing
(on the SoftHSM token) in the signer process, tied by the call's X-Request-Id. And without the
`otel` extra: custody runs with tracing off, and switched on it stops at start-up with one line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.e2e.process import custody_env, run_custody
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, InstallationFactory, allow_all_installation
from tests.support.tree import Tree, free_port, start

pytestmark = pytest.mark.slow

ROLES = ("api-1", "signer-1", "background")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]


@dataclass
class Collector:
    """An OTLP/HTTP trace receiver (`POST /v1/traces`, protobuf), keeping every span."""

    url: str = ""
    spans: list[Span] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def named(self, name: str) -> list[Span]:
        with self.lock:
            return [span for span in self.spans if span.name == name]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    found = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            assert self.path == "/v1/traces", self.path
            assert self.headers["Content-Type"] == "application/x-protobuf"
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        with found.lock:
                            found.spans.append(
                                Span(
                                    span.name,
                                    span.trace_id.hex(),
                                    span.span_id.hex(),
                                    span.parent_span_id.hex(),
                                    _attributes(span.attributes),
                                    resource,
                                )
                            )
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(
    home: Installation, collector: Collector, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tree]:
    port = free_port()
    env = custody_env(
        home.env,
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        OTEL_SERVICE_NAME="custody-test",
        OTEL_BSP_SCHEDULE_DELAY="100",  # milliseconds: spans reach the collector at once
    )
    log = tmp_path_factory.mktemp("tracing") / "serve.log"
    argv = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    tree = start(argv, env, log, roles=ROLES, port=port)
    try:
        yield tree
    finally:
        tree.stop()


def _wait(what: str, done: Any, tree: Tree, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"{what}: not within {seconds:.0f} s\n{tree.output()}"
        time.sleep(0.1)


def test_each_process_exports_its_spans_of_a_signed_withdrawal(
    server: Tree, home: Installation, collector: Collector
) -> None:
    call_id = f"otlp-{uuid.uuid4()}"
    wallet = home.wallet().name
    with httpx.Client(base_url=server.url, timeout=30) as http:
        api = Api(http.request, home.client())
        body = json.dumps(withdrawal(wallet)).encode()
        headers = {"Idempotency-Key": str(uuid.uuid4()), "X-Request-Id": call_id}
        created = api.call("POST", "/v1/requests", body, headers=headers)
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]
        answer = api.call("GET", f"/v1/requests/{request_id}?wait=20&seen=approved")
        assert answer.json()["status"] == "signed", answer.text

    def signed_span() -> list[Span]:
        return [
            s
            for s in collector.named("signer.sign")
            if s.attributes.get("custody.request_id") == request_id
        ]

    _wait("the signer's spans", signed_span, server)
    (call,) = [
        s
        for s in collector.named("POST /v1/requests")
        if s.attributes.get("custody.http_request_id") == call_id
    ]
    assert call.resource["service.name"] == "custody-test"
    assert call.resource["custody.process"] == "api-1"
    assert call.attributes["http.response.status_code"] == 201
    (intake,) = [s for s in collector.named("intake") if s.parent_span_id == call.span_id]
    assert intake.attributes["custody.request_id"] == request_id
    assert intake.trace_id == call.trace_id

    (sign,) = signed_span()
    assert sign.resource["custody.process"] == "signer-1"
    assert sign.attributes["custody.http_request_id"] == call_id
    assert sign.attributes["custody.wallet"] == wallet
    assert sign.attributes["custody.outcome"] == "signed"
    expected = {"signer.batch", "signer.claim", "signer.sign", "hsm.sign", "signer.record"}

    def batch_trace() -> set[str]:
        with collector.lock:
            return {s.name for s in collector.spans if s.trace_id == sign.trace_id}

    _wait("the signer's whole batch", lambda: expected <= batch_trace(), server)
    (batch,) = [s for s in collector.named("signer.batch") if s.span_id == sign.parent_span_id]
    assert batch.parent_span_id == ""  # a trace of the signer's own
    assert batch.trace_id != call.trace_id
    (hsm,) = [s for s in collector.named("hsm.sign") if s.parent_span_id == sign.span_id]
    assert hsm.attributes["custody.hsm.algorithm"] == "secp256k1"


def test_a_stop_exports_what_each_process_still_held(
    installations: InstallationFactory,
    collector: Collector,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Spans are exported in batches; a process that stops (SIGTERM) flushes its own, though
    multiprocessing ends a child without the SDK's exit hook. An installation of its own: the
    module's other tree must not sign (and export) this test's request."""
    with allow_all_installation(installations) as own:
        _stop_and_look(own, collector, tmp_path_factory)


def _stop_and_look(
    home: Installation, collector: Collector, tmp_path_factory: pytest.TempPathFactory
) -> None:
    port = free_port()
    env = custody_env(
        home.env,
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        OTEL_BSP_SCHEDULE_DELAY="600000",  # ten minutes: only the stop's flush sends anything
    )
    log = tmp_path_factory.mktemp("tracing-stop") / "serve.log"
    tree = start(
        ["serve", "--host", "127.0.0.1", "--port", str(port)], env, log, roles=ROLES, port=port
    )
    call_id = f"flush-{uuid.uuid4()}"
    try:
        with httpx.Client(base_url=tree.url, timeout=30) as http:
            api = Api(http.request, home.client())
            body = json.dumps(withdrawal(home.wallet().name)).encode()
            headers = {"Idempotency-Key": str(uuid.uuid4()), "X-Request-Id": call_id}
            created = api.call("POST", "/v1/requests", body, headers=headers)
            assert created.status_code == 201, created.text
            request_id = created.json()["id"]
            answer = api.call("GET", f"/v1/requests/{request_id}?wait=20&seen=approved")
            assert answer.json()["status"] == "signed", answer.text
        tree.wait_for(
            "the background process running",
            lambda: "background process running" in tree.output(),
        )
        time.sleep(1.0)  # the batch processors' delay is long: nothing may have left yet
        with collector.lock:
            early = [
                s for s in collector.spans if s.attributes.get("custody.http_request_id") == call_id
            ]
        assert early == []
        tree.signal(signal.SIGTERM)
        assert tree.process.wait(timeout=60) == 0, tree.output()
    finally:
        tree.stop()
    with collector.lock:
        ours = [
            s for s in collector.spans if s.attributes.get("custody.http_request_id") == call_id
        ]
    by_process = {(s.name, s.resource["custody.process"]) for s in ours}
    assert ("POST /v1/requests", "api-1") in by_process
    assert ("signer.sign", "signer-1") in by_process


def _blocked_env(home: Installation, tmp_path: Path, **more: str) -> dict[str, str]:
    """The environment of a machine without the `otel` extra: the SDK, the exporters and
    the protobuf messages cannot be imported (first on the path, packages of those names that
    fail as missing ones do). The OpenTelemetry API stays: FastAPI itself requires it."""
    blocker = tmp_path / "no-otel"
    for name in ("sdk", "exporter", "proto"):
        package = blocker / "opentelemetry" / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(
            f"raise ImportError(\"No module named 'opentelemetry.{name}'\", "
            f"name='opentelemetry.{name}')\n"
        )
    env = {k: v for k, v in custody_env(home.env).items() if not k.startswith("OTEL_")}
    path = [str(blocker), str(REPO), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return env | {"PYTHONPATH": os.pathsep.join(path)} | more


def test_without_the_extra_custody_imports_and_signs_with_tracing_off(
    home: Installation, tmp_path: Path
) -> None:
    env = _blocked_env(home, tmp_path)
    code = (
        "import importlib, pkgutil, custody\n"
        "try:\n"
        "    import opentelemetry.sdk\n"
        "except ImportError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('the blocker did not block')\n"
        "for module in pkgutil.walk_packages(custody.__path__, 'custody.'):\n"
        "    if module.name != 'custody.tracing.otel' and '.migrations.' not in module.name:\n"
        "        importlib.import_module(module.name)\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    # and a real signer run, with nothing switched on
    worked = run_custody(["worker", "--once", "--json"], env)
    assert worked.returncode == 0, worked.stderr
    assert "signed" in json.loads(worked.stdout)


@pytest.mark.parametrize(
    ("argv", "switch"),
    [
        (
            ["serve", "--host", "127.0.0.1", "--port", "0"],
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
        ),
        (["worker"], {"OTEL_TRACES_EXPORTER": "otlp"}),
        (["worker", "--once"], {"CUSTODY_TRACING": "true"}),
    ],
)
def test_switched_on_without_the_extra_start_up_stops_with_one_line(
    home: Installation, tmp_path: Path, argv: list[str], switch: dict[str, str]
) -> None:
    env = _blocked_env(home, tmp_path, **switch)
    ran = run_custody(argv, env, timeout=60)
    assert ran.returncode == 2, (ran.stdout, ran.stderr)
    assert "Traceback" not in ran.stderr
    (line,) = ran.stderr.strip().splitlines()
    (variable,) = switch
    assert line.startswith("error: cannot start: tracing is on"), line
    assert variable in line
    assert "pip install 'custody[otel]'" in line
    assert "started (pid" not in ran.stdout + ran.stderr  # nothing was started
