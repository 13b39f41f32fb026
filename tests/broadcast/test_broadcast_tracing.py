"""Tracing (custody.tracing) on a connected chain: the node's quote at intake and the
broadcaster's send each get a span naming the request, its chain and its transaction."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from custody import tracing
from custody.store.models import Request
from custody.tracing import otel
from tests.broadcast.conftest import Connected
from tests.broadcast.test_broadcast_nonces import bare_withdrawal


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.activate(otel.build("test", [exporter], batch=False))
    try:
        yield exporter
    finally:
        tracing.stop()


def test_the_quote_and_the_send_of_a_withdrawal_are_traced(
    connected: Connected, spans: InMemorySpanExporter
) -> None:
    created = connected.api.create(bare_withdrawal(connected.wallet.name))
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    connected.settle([request_id], lambda s: s in {"broadcast", "confirmed"})
    with connected.installation.runtime.db.read() as session:
        request = session.get(Request, request_id)
        assert request is not None
        tx_hash, nonce = request.result_tx_hash, request.evm_nonce
    finished = spans.get_finished_spans()
    chain = f"anvil-{connected.installation.backend}"

    quotes = [s for s in finished if s.name == "intake.node_quote"]
    assert [(s.attributes or {}).get("custody.chain") for s in quotes] == [chain]
    (intake,) = [s for s in finished if s.name == "intake"]
    assert quotes[0].parent is not None
    assert intake.context is not None
    assert quotes[0].parent.span_id == intake.context.span_id

    sends = [
        s
        for s in finished
        if s.name == "broadcast.send"
        and (s.attributes or {}).get("custody.request_id") == request_id
    ]
    assert len(sends) == 1, [s.name for s in finished]
    attributes = sends[0].attributes or {}
    assert attributes["custody.chain"] == chain
    assert attributes["custody.tx_hash"] == tx_hash
    assert attributes["custody.status_changed"] is True
    assert attributes["custody.evm_nonce"] == nonce
