"""How `custody serve` runs uvicorn: timeouts and limits that a slow or idle client cannot outlast.

uvicorn (h11) times out only an idle keep-alive connection once a response was sent. A client
that opens a connection and sends nothing, or sends its request head or body a byte at a time
(slowloris), holds the connection forever, and enough of them exhaust the server's file
descriptors or its connection limit. `RequestDeadlineProtocol` gives every request a deadline
that starts when the server waits for it and ends when the client has sent all of it; a client
that misses it is disconnected.

A stop is bounded too (`shutdown_timeout_seconds`). uvicorn waits for calls in progress without
end by default, and a call can wait on a database that stopped answering or on an HSM; calls
still running after half the bound are cancelled, and when the bound is reached whatever still
runs (a thread blocked in a driver cannot be cancelled) is abandoned: the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import threading
from types import FrameType
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from custody.settings import Settings

# A request head (request line and headers) larger than this is refused with 400.
MAX_HEAD_BYTES = 16 * 1024
# What the client still owes while the server waits: a request, or the rest of its body.
_OWED = (h11.IDLE, h11.SEND_BODY)
# The exit status of a stop that ran out of time (a clean stop exits 0).
STOP_OVERDUE_STATUS = 1
log = logging.getLogger("custody.http")


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration from the settings, with the request deadline the protocol needs."""

    def __init__(self, app: Any, settings: Settings, *, host: str, port: int) -> None:
        super().__init__(
            app,
            host=host,
            port=port,
            http=RequestDeadlineProtocol,
            ws="none",  # nothing here speaks WebSocket: no upgrade to a protocol without a deadline
            log_level="warning",
            access_log=False,
            timeout_keep_alive=settings.http_keep_alive_seconds,
            limit_concurrency=settings.http_max_connections,
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
            # uvicorn would otherwise take X-Forwarded-For from any peer on 127.0.0.1 (or its
            # FORWARDED_ALLOW_IPS) as the client address, which rate limits key on: only the
            # configured CUSTODY_TRUSTED_PROXIES are believed (custody.http.ratelimit).
            proxy_headers=False,
            # Calls still running this long after a stop was asked for are cancelled.
            timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout_seconds / 2)),
        )
        self.request_timeout = settings.http_request_timeout_seconds
        self.shutdown_timeout = settings.shutdown_timeout_seconds


class RequestDeadlineProtocol(H11Protocol):
    """h11 with a deadline per request: from waiting for it to having received all of it."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        if not isinstance(config, ServerConfig):
            raise TypeError("RequestDeadlineProtocol needs a ServerConfig (its request timeout)")
        self.request_timeout = config.request_timeout
        self.request_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._follow_request()

    def handle_events(self) -> None:
        super().handle_events()
        self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _follow_request(self) -> None:
        """Start the clock when a request is owed; stop it once the client has sent it all.

        Arriving bytes never restart it: that is what lets a slow client live forever.
        """
        owed = self.conn.their_state in _OWED and not self.transport.is_closing()
        if not owed:
            self._cancel_deadline()
        elif self.request_deadline is None:
            self.request_deadline = self.loop.call_later(self.request_timeout, self._too_slow)

    def _cancel_deadline(self) -> None:
        if self.request_deadline is not None:
            self.request_deadline.cancel()
            self.request_deadline = None

    def _too_slow(self) -> None:
        self.request_deadline = None
        if self.conn.their_state in _OWED and not self.transport.is_closing():
            self.transport.close()


class BoundedServer(uvicorn.Server):
    """uvicorn, with a deadline on its stop: from the first SIGTERM or SIGINT, the process has
    `shutdown_timeout` seconds; then it exits, whatever is still waiting."""

    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config)
        self.shutdown_timeout = config.shutdown_timeout
        self._deadline: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._deadline is None:
            self._deadline = threading.Timer(self.shutdown_timeout, self._overdue)
            self._deadline.daemon = True
            self._deadline.start()

    def _overdue(self) -> None:
        log.error(
            "the stop took longer than %g s (CUSTODY_SHUTDOWN_TIMEOUT_SECONDS); exiting now",
            self.shutdown_timeout,
        )
        for handler in logging.getLogger().handlers:
            with contextlib.suppress(Exception):
                handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        # Not sys.exit: the interpreter's own exit would wait for the very threads that are stuck.
        os._exit(STOP_OVERDUE_STATUS)


def run(config: ServerConfig, sockets: list[socket.socket] | None = None) -> bool:
    """Serve until stopped (SIGTERM, SIGINT); False when the server never started.

    `sockets`: already bound listening sockets (the supervisor's, shared by its API processes)
    instead of binding the configured host and port."""
    server = BoundedServer(config)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a person stops it
        server.run(sockets=sockets)
    return server.started
