"""One server span per HTTP call (custody.tracing), added to the app only when tracing is on.

Just inside CallId, so the span names the call's X-Request-Id (`custody.http_request_id`) and
refusals of the rate and body limits get a span too; health probes and `/metrics` scrapes get none
(as they get no access log line). The span continues the caller's trace when
the call carries a W3C `traceparent`; its name is the method and the route's template
(`POST /v1/requests`), never the path with its ids, so spans of one endpoint group together.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from custody import callid, tracing
from custody.http.callid import QUIET_PATHS

SERVER_ERROR = 500


class TracedCalls:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Probes and scrapes, every few seconds from every monitor: no trace to follow there.
        if scope["type"] != "http" or scope["path"] in QUIET_PATHS:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        status = SERVER_ERROR  # what the client sees when the app raises before answering

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope.get("headers", [])
        }
        attributes: tracing.Attributes = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
            "custody.http_request_id": callid.current(),
        }
        with tracing.server_span(method, headers, attributes) as span:
            try:
                await self.app(scope, receive, send_noting_status)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route is not None:
                    span.rename(f"{method} {scope.get('root_path', '')}{route}")
                span.set({"http.route": route, "http.response.status_code": status})
                if status >= SERVER_ERROR:
                    span.fail(f"HTTP {status}")
