"""OpenTelemetry tracing (custody.tracing) in one process: a withdrawal over real HTTP, signed on
the SoftHSM token by the signer worker, its webhook delivered to a real receiver, each step's
span caught by the SDK's in-memory exporter; and tracing off by default, with nothing of
OpenTelemetry loaded."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from custody import tracing
from custody.app import create_app
from custody.hsm.errors import KeyNotFound
from custody.http.tracing import TracedCalls
from custody.signing.worker import SignerWorker
from custody.tracing import otel
from custody.webhooks.deliverer import DeliveryPolicy, deliver_due
from custody.webhooks.dispatcher import dispatch_all
from custody.webhooks.service import set_client_webhook
from custody.webhooks.signing import BodySigner
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation
from tests.support.server import serving

REPO = Path(__file__).resolve().parents[2]
# A caller's own trace (W3C trace context): the server span must continue it.
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.activate(otel.build("test", [exporter], batch=False))
    try:
        yield exporter
    finally:
        tracing.stop()


@pytest.fixture
def hooks() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A webhook receiver on 127.0.0.1 that keeps the headers of every POST."""
    received: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, (name, [span.name for span in spans])
    return found[0]


def _parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def _trace(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.trace_id


def test_a_signed_withdrawal_is_traced_from_the_call_to_the_hsm_and_the_webhook(
    fresh_installation: Installation,
    spans: InMemorySpanExporter,
    hooks: tuple[str, list[dict[str, str]]],
) -> None:
    inst = fresh_installation
    inst.allow_all_policy()
    wallet = inst.wallet()
    client = inst.client()
    hook_url, received = hooks
    with inst.runtime.db.write() as session:
        set_client_webhook(session, name=client.name, url=hook_url, actor="test")
    call_id = f"trace-{uuid.uuid4()}"
    app = create_app(inst.runtime, run_worker=False)
    with (
        serving(lambda _port: app) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}") as http,
    ):
        api = Api(http.request, client)
        body = withdrawal(wallet.name, nonce=0)
        headers = {
            "Idempotency-Key": str(uuid.uuid4()),
            "X-Request-Id": call_id,
            "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
        }
        created = api.call("POST", "/v1/requests", json.dumps(body).encode(), headers=headers)
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]
        # the signer, as the signer process runs it: signs on the SoftHSM token
        assert SignerWorker(inst.runtime, worker_id="tracing-test").drain() == 1
        assert api.get(request_id).json()["status"] == "signed"
    dispatch_all(inst.runtime.db)
    with httpx.Client() as posting:
        delivered = deliver_due(
            inst.runtime.db,
            BodySigner(inst.runtime),
            DeliveryPolicy(timeout_seconds=5),
            http=posting,
        )
    assert delivered >= 2  # request.created and request.signed

    finished = list(spans.get_finished_spans())

    # the HTTP call: a server span continuing the caller's trace, naming the route and call id
    call = _one(finished, "POST /v1/requests")
    assert call.kind is SpanKind.SERVER
    assert _trace(call) == int(CALLER_TRACE, 16)
    assert _parent_of(call) == int(CALLER_SPAN, 16)
    assert call.attributes is not None
    assert call.attributes["http.route"] == "/v1/requests"
    assert call.attributes["http.request.method"] == "POST"
    assert call.attributes["http.response.status_code"] == 201
    assert call.attributes["custody.http_request_id"] == call_id
    assert call.resource.attributes["service.name"] == "custody"
    assert call.resource.attributes["custody.process"] == "test"

    # intake under the call: decode, then the write transaction with its lock and the policy
    intake = _one(finished, "intake")
    assert _parent_of(intake) == _id(call)
    assert intake.attributes is not None
    assert intake.attributes["custody.request_id"] == request_id
    assert intake.attributes["custody.wallet"] == wallet.name
    assert intake.attributes["custody.status"] == "approved"
    assert intake.attributes["custody.http_request_id"] == call_id
    decode = _one(finished, "intake.decode")
    store = _one(finished, "intake.store")
    assert _parent_of(decode) == _id(intake)
    assert _parent_of(store) == _id(intake)
    assert decode.end_time is not None
    assert store.start_time is not None
    assert decode.end_time <= store.start_time
    lock = _one(finished, "intake.ledger_lock")
    policy = _one(finished, "intake.policy")
    assert _parent_of(lock) == _id(store)
    assert _parent_of(policy) == _id(store)
    assert policy.attributes is not None
    assert policy.attributes["custody.decision"] == "allow"

    # the signer: a trace of its own per batch (another process in production), naming the
    # request and the call that created it
    batch = _one(finished, "signer.batch")
    assert batch.parent is None
    assert _trace(batch) != _trace(call)
    claim = _one(finished, "signer.claim")
    sign = _one(finished, "signer.sign")
    record = _one(finished, "signer.record")
    assert {_parent_of(claim), _parent_of(sign), _parent_of(record)} == {_id(batch)}
    assert claim.attributes is not None
    assert list(claim.attributes["custody.request_ids"]) == [request_id]  # type: ignore[arg-type]
    assert sign.attributes is not None
    assert sign.attributes["custody.request_id"] == request_id
    assert sign.attributes["custody.http_request_id"] == call_id
    assert sign.attributes["custody.wallet"] == wallet.name
    assert sign.attributes["custody.outcome"] == "signed"
    assert record.attributes is not None
    assert list(record.attributes["custody.outcomes"]) == ["signed"]  # type: ignore[arg-type]
    hsm = [s for s in finished if s.name == "hsm.sign" and _parent_of(s) == _id(sign)]
    assert len(hsm) == 1
    assert hsm[0].attributes is not None
    assert hsm[0].attributes["custody.hsm.algorithm"] == "secp256k1"
    assert hsm[0].attributes["custody.hsm.token"] == inst.settings.main_token_label
    assert hsm[0].status.status_code is not StatusCode.ERROR
    assert batch.start_time is not None
    assert claim.start_time == batch.start_time  # the claim's span starts with the batch's

    # webhook deliveries: one span each, whose traceparent reached the receiver
    deliveries = [s for s in finished if s.name == "webhook.deliver"]
    about = {
        (s.attributes or {}).get("custody.event")
        for s in deliveries
        if (s.attributes or {}).get("custody.request_id") == request_id
    }
    assert {"request.created", "request.signed"} <= about
    posts = [s for s in finished if s.name == "POST" and s.kind is SpanKind.CLIENT]
    assert {_parent_of(s) for s in posts} == {_id(d) for d in deliveries}
    sent = {h["traceparent"].split("-")[1] for h in received}
    assert sent == {f"{_trace(d):032x}" for d in deliveries}


def test_a_call_that_fails_marks_its_span(
    fresh_installation: Installation, spans: InMemorySpanExporter
) -> None:
    """A refused call gets its span too, named after its route, with the status it got."""
    app = create_app(fresh_installation.runtime, run_worker=False)
    with serving(lambda _port: app) as port:
        answer = httpx.get(f"http://127.0.0.1:{port}/v1/requests/req_nothing", timeout=10)
        for probe in ("/healthz", "/readyz", "/metrics"):
            assert httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=10).status_code == 200
    assert answer.status_code == 401
    finished = list(spans.get_finished_spans())
    # probes and scrapes, every few seconds from every monitor, make no spans
    assert [s.name for s in finished if s.kind is SpanKind.SERVER] == [
        "GET /v1/requests/{request_id}"
    ]
    call = _one(finished, "GET /v1/requests/{request_id}")
    assert call.attributes is not None
    assert call.attributes["http.response.status_code"] == 401
    assert call.attributes["url.path"] == "/v1/requests/req_nothing"
    assert call.attributes["custody.http_request_id"] == answer.headers["X-Request-Id"]


def test_tracing_is_off_by_default_and_loads_nothing(fresh_installation: Installation) -> None:
    assert not tracing.enabled()
    assert tracing.wanted(None, {}) is None
    assert tracing.start("api-1", None) is False
    app = create_app(fresh_installation.runtime, run_worker=False)
    assert TracedCalls not in [m.cls for m in app.user_middleware]
    with tracing.span("anything", {"custody.request_id": "req_x"}) as span:
        span.set({"custody.outcome": "signed"})  # a no-op, and no error
    # off, every span is one shared do-nothing context manager: nothing is allocated per step
    assert tracing.span("a") is tracing.span("b", {"custody.wallet": "w"})
    assert tracing.now() == 0
    # A process of the tree, as `custody serve` starts one without OTEL_* variables: the
    # whole app is imported, and no OpenTelemetry module with it.
    code = (
        "import sys, custody.app, custody.processes.api, custody.processes.signer, "
        "custody.processes.background, custody.cli.main\n"
        "from custody import tracing\n"
        "assert tracing.start('api-1', None) is False\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', "
        "'opentelemetry.exporter', 'custody.tracing.otel')))\n"
        "assert not loaded, loaded\n"
    )
    env = {k: v for k, v in fresh_installation.env.items() if not k.startswith("OTEL_")}
    ran = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr


@pytest.mark.parametrize(
    ("setting", "environ", "reason"),
    [
        (None, {}, None),
        (
            None,
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
        (
            None,
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"},
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        ),
        (None, {"OTEL_TRACES_EXPORTER": "otlp"}, "OTEL_TRACES_EXPORTER"),
        (None, {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, None),
        (None, {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, None),
        (True, {}, "CUSTODY_TRACING"),
        (False, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, None),
    ],
)
def test_what_switches_tracing_on(
    setting: bool | None, environ: dict[str, str], reason: str | None
) -> None:
    assert tracing.wanted(setting, environ) == reason


def test_an_exporter_custody_does_not_ship_is_refused_in_one_line() -> None:
    with pytest.raises(tracing.TracingUnavailable, match="OTEL_TRACES_EXPORTER=zipkin"):
        tracing.check(None, {"OTEL_TRACES_EXPORTER": "zipkin"})
    with pytest.raises(tracing.TracingUnavailable, match="http/protobuf only"):
        tracing.check(
            None,
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        )
    assert tracing.check(None, {"OTEL_TRACES_EXPORTER": "otlp,console"}) == "OTEL_TRACES_EXPORTER"


def test_a_failed_hsm_call_shows_in_its_span(
    fresh_installation: Installation, spans: InMemorySpanExporter
) -> None:
    with pytest.raises(KeyNotFound):
        fresh_installation.runtime.token().sign_secp256k1("no-such-key", bytes(32))
    (failed,) = [s for s in spans.get_finished_spans() if s.name == "hsm.sign"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["custody.key_label"] == "no-such-key"
    assert [event.name for event in failed.events] == ["exception"]
