"""Optional OpenTelemetry tracing: spans around the steps of a request (the HTTP call, intake,
the signer's claim, signature and record, the HSM call, broadcasts, webhook deliveries).

Off by default, and then free: `span()` hands back one shared do-nothing context manager, no
OpenTelemetry module is imported, and the app gets no tracing middleware at all. It is switched
on by the standard OpenTelemetry variables (`OTEL_TRACES_EXPORTER`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or by `CUSTODY_TRACING=true`, and needs the `otel` extra
(`pip install 'custody[otel]'`): custody.tracing.otel, the only module that imports OpenTelemetry,
is imported only then. `custody serve` and `custody worker` check that at start-up and stop with
one line when the packages are missing (`check`); each process of the tree starts its own
exporter (`start`) and flushes it when it stops (`stop`).

What a span carries (docs/metrics.md): `custody.request_id` (the `req_…` id),
`custody.http_request_id` (the X-Request-Id of the call that created the request: the signer and
background processes run in other processes and other traces, and this attribute finds them
beside the call's own span), `custody.wallet`, and the step's own facts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Protocol

from custody.errors import CustodyError

if TYPE_CHECKING:
    from custody.tracing.otel import Live

AttributeValue = str | int | float | bool | list[str]
Attributes = Mapping[str, AttributeValue | None]
"""Span attributes; a None value is left out (an id a step does not have)."""

INSTALL_HINT = "pip install 'custody[otel]'"
# The variables that switch tracing on without CUSTODY_TRACING, in the order they are named.
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


class SpanHandle(Protocol):
    """What a step may tell its span once it knows more (an id, an outcome)."""

    def set(self, attributes: Attributes) -> None: ...

    def rename(self, name: str) -> None: ...

    def fail(self, description: str) -> None: ...


class _NoSpan:
    __slots__ = ()

    def set(self, attributes: Attributes) -> None:
        return None

    def rename(self, name: str) -> None:
        return None

    def fail(self, description: str) -> None:
        return None


NO_SPAN: SpanHandle = _NoSpan()
_OFF: AbstractContextManager[SpanHandle] = nullcontext(NO_SPAN)
_live: Live | None = None


class TracingUnavailable(CustodyError):
    """Tracing was asked for but cannot run: its packages are missing, or a setting names an
    exporter or protocol custody does not ship."""

    status = 500
    title = "Tracing unavailable"
    slug = "tracing-unavailable"


def enabled() -> bool:
    return _live is not None


def span(
    name: str, attributes: Attributes | None = None, *, start: int | None = None
) -> AbstractContextManager[SpanHandle]:
    """A child of the current span (or a new trace), around a step of this process; `start`
    (from `now()`): when the step began, if before this span is opened."""
    live = _live
    if live is None:
        return _OFF
    return live.span(name, attributes, start)


def now() -> int:
    """The moment for a later `span(start=)` or `finished` (0 when tracing is off)."""
    return time.time_ns() if _live is not None else 0


def finished(name: str, start: int, attributes: Attributes | None = None) -> None:
    """A span for a step that began at `start` (from `now()`) and just ended, written only
    now: for steps that are worth a span only once their outcome is known (a signer's claim
    that found something to sign)."""
    live = _live
    if live is not None:
        live.finished(name, start, attributes)


def server_span(
    name: str, headers: Mapping[str, str], attributes: Attributes | None = None
) -> AbstractContextManager[SpanHandle]:
    """The span of an HTTP call served: it continues the caller's trace when the call's
    headers carry one (W3C `traceparent`)."""
    live = _live
    if live is None:
        return _OFF
    return live.server_span(name, headers, attributes)


def client_span(
    name: str, headers: MutableMapping[str, str], attributes: Attributes | None = None
) -> AbstractContextManager[SpanHandle]:
    """The span of an HTTP call custody makes (a webhook): `headers` get its `traceparent`,
    so the receiver's trace continues this one."""
    live = _live
    if live is None:
        return _OFF
    return live.client_span(name, headers, attributes)


def annotate(attributes: Attributes) -> None:
    """Add attributes to the current span (nothing when tracing is off or no span is open)."""
    live = _live
    if live is not None:
        live.annotate(attributes)


def wanted(setting: bool | None, environ: Mapping[str, str] | None = None) -> str | None:
    """What switches tracing on (a variable's name), or None when it is off.

    `setting` (CUSTODY_TRACING, `tracing` in custody.toml) decides when set; unset, the
    standard variables do: an exporter other than `none`, or an OTLP endpoint, unless
    `OTEL_SDK_DISABLED=true`.
    """
    if setting is not None:
        return "CUSTODY_TRACING" if setting else None
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporters = [e.strip() for e in env.get("OTEL_TRACES_EXPORTER", "").split(",") if e.strip()]
    if exporters:
        return None if exporters == ["none"] else "OTEL_TRACES_EXPORTER"
    return next((name for name in ENDPOINT_VARIABLES if env.get(name, "").strip()), None)


def check(setting: bool | None, environ: Mapping[str, str] | None = None) -> str | None:
    """At start-up: what switched tracing on (None: off), or TracingUnavailable saying in one
    line why it cannot run (missing packages, an exporter or protocol custody does not ship)."""
    reason = wanted(setting, environ)
    if reason is None:
        return None
    otel = _import_otel(reason)
    otel.exporter_names(os.environ if environ is None else environ)  # raises when unknown
    return reason


def start(role: str, setting: bool | None) -> bool:
    """Switch tracing on in this process when the settings and environment ask for it, its
    spans naming `role` (api-1, signer-1, background …); whether it is on."""
    reason = wanted(setting)
    if reason is None:
        return False
    activate(_import_otel(reason).build(role))
    return True


def activate(live: Live) -> None:
    """Send this process's spans through `live` (tests pass one with an in-memory exporter)."""
    global _live  # noqa: PLW0603  (one tracer per process, as logging has one root logger)
    if _live is not None:
        _live.shutdown()
    _live = live


def stop() -> None:
    """Export what is still buffered, and switch tracing off (a process that stops)."""
    global _live
    live, _live = _live, None
    if live is not None:
        live.shutdown()


def _import_otel(reason: str) -> _OtelModule:
    try:
        from custody.tracing import otel
    except ImportError as missing:
        raise TracingUnavailable(
            f"tracing is on ({reason}) but OpenTelemetry is not installed "
            f"({missing.name or missing}): {INSTALL_HINT}, or unset {reason}"
        ) from None
    return otel


class _OtelModule(Protocol):
    def build(self, role: str) -> Live: ...

    def exporter_names(self, environ: Mapping[str, str]) -> list[str]: ...
