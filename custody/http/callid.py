"""Gives every HTTP call an id (`X-Request-Id`), answers with it, and logs one line per call.

Outermost middleware: calls refused by the rate limit or the body limit get an id too. An error
no handler answered goes past it to Starlette's outermost error middleware; the id stays bound
for that (custody.http.problems logs it and puts it on the 500), since the call's task ends
with it.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from custody import callid

HEADER_KEY = callid.HEADER.lower().encode()
# Probes and scrapes, every few seconds from every monitor: their lines would bury the calls.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
log = logging.getLogger("custody.http.access")


class CallId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        call_id = callid.choose(_offered(scope))
        token = callid.bind(call_id)
        status = 500  # what the client sees when the app raises before answering
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k != HEADER_KEY]
                headers.append((HEADER_KEY, call_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.log(
                logging.DEBUG if scope["path"] in QUIET_PATHS else logging.INFO,
                "%s %s %d %.1f ms",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
            )
        callid.unbind(token)


def _offered(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == HEADER_KEY:
            try:
                return str(value.decode("ascii"))
            except UnicodeDecodeError:
                return None
    return None
