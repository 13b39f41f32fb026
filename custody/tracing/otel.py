"""The OpenTelemetry side of custody.tracing: the only module that imports OpenTelemetry, and
imported only once tracing is switched on (the `otel` extra: opentelemetry-sdk and the OTLP/HTTP
exporter).

The SDK reads its usual variables itself: the endpoint, headers and timeout of the exporter
(`OTEL_EXPORTER_OTLP_*`), the sampler (`OTEL_TRACES_SAMPLER`), the batch processor's delays
(`OTEL_BSP_*`), the resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`) and the
propagators (`OTEL_PROPAGATORS`). The tracer provider is this process's own, not the global
one: a test can switch tracing on and off again, and nothing else in the process is traced
behind custody's back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import propagate
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import SpanKind, Status, StatusCode

from custody import __version__
from custody.tracing import Attributes, SpanHandle, TracingUnavailable

DEFAULT_SERVICE_NAME = "custody"
EXPORTERS = ("otlp", "console")
# The OTLP exporter shipped in the extra speaks protobuf over HTTP (port 4318), the protocol
# every collector accepts; gRPC would add grpcio to the image for no gain here.
PROTOCOL = "http/protobuf"
SHUTDOWN_MILLIS = 5000


class _Span:
    __slots__ = ("_span",)

    def __init__(self, span: Any) -> None:
        self._span = span

    def set(self, attributes: Attributes) -> None:
        self._span.set_attributes(_clean(attributes))

    def rename(self, name: str) -> None:
        self._span.update_name(name)

    def fail(self, description: str) -> None:
        self._span.set_status(Status(StatusCode.ERROR, description))


class Live:
    """Tracing switched on in this process: a tracer, and the provider that exports its spans."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("custody", __version__)

    def span(
        self, name: str, attributes: Attributes | None, start: int | None
    ) -> AbstractContextManager[SpanHandle]:
        return self._span(name, attributes, SpanKind.INTERNAL, start=start)

    def finished(self, name: str, start: int, attributes: Attributes | None) -> None:
        span = self.tracer.start_span(name, start_time=start, attributes=_clean(attributes or {}))
        span.end()

    def server_span(
        self, name: str, headers: Mapping[str, str], attributes: Attributes | None
    ) -> AbstractContextManager[SpanHandle]:
        return self._span(name, attributes, SpanKind.SERVER, parent=propagate.extract(headers))

    @contextmanager
    def client_span(
        self, name: str, headers: MutableMapping[str, str], attributes: Attributes | None
    ) -> Iterator[SpanHandle]:
        with self._span(name, attributes, SpanKind.CLIENT) as span:
            propagate.inject(headers)
            yield span

    @contextmanager
    def _span(
        self,
        name: str,
        attributes: Attributes | None,
        kind: SpanKind,
        parent: Any = None,
        start: int | None = None,
    ) -> Iterator[SpanHandle]:
        with self.tracer.start_as_current_span(
            name, context=parent, kind=kind, attributes=_clean(attributes or {}), start_time=start
        ) as span:
            yield _Span(span)

    def annotate(self, attributes: Attributes) -> None:
        span = trace_api.get_current_span()
        if span.is_recording():
            span.set_attributes(_clean(attributes))

    def shutdown(self) -> None:
        self.provider.force_flush(SHUTDOWN_MILLIS)
        self.provider.shutdown()


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The exporters `OTEL_TRACES_EXPORTER` names (default `otlp`); TracingUnavailable for one
    custody does not ship, or an OTLP protocol other than http/protobuf."""
    names = [n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if n.strip()]
    names = [n for n in names or ["otlp"] if n != "none"]
    unknown = [n for n in names if n not in EXPORTERS]
    if unknown:
        raise TracingUnavailable(
            f"OTEL_TRACES_EXPORTER={unknown[0]} is not an exporter custody ships "
            f"(use {' or '.join(EXPORTERS)})"
        )
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = environ.get(variable, "").strip()
        if protocol:
            if protocol != PROTOCOL and "otlp" in names:
                raise TracingUnavailable(
                    f"{variable}={protocol}: custody exports OTLP as {PROTOCOL} only"
                )
            break
    return names


def build(
    role: str,
    exporters: Sequence[SpanExporter] | None = None,
    *,
    batch: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Live:
    """A tracer for the process `role`, exporting to `exporters` (default: those the
    environment names), in batches (`batch`) or each span as it ends (tests)."""
    env = os.environ if environ is None else environ
    if exporters is None:
        exporters = [_exporter(name) for name in exporter_names(env)]
    provider = TracerProvider(resource=_resource(role))
    for exporter in exporters:
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        provider.add_span_processor(processor)
    return Live(provider)


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    exporter: SpanExporter = OTLPSpanExporter()
    return exporter


def _resource(role: str) -> Resource:
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win; else the service is `custody`, and
    `custody.process` names the process of the tree (api-1, signer-1, background …)."""
    resource = Resource.create({"service.version": __version__, "custody.process": role})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


def _clean(attributes: Attributes) -> dict[str, Any]:
    return {key: value for key, value in attributes.items() if value is not None}
