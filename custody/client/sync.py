"""`Client`: custody's API for a trading system, over a blocking httpx client."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.client import calls
from custody.client.calls import Call, Credentials, Goal, RetryPolicy
from custody.client.errors import ConnectionFailed, WaitTimedOut
from custody.client.models import Request, RequestPage, WebhookPublicKey
from custody.client.tokens import load_private_key, read_client_id

DEFAULT_TIMEOUT = httpx.Timeout(10.0, read=calls.MAX_POLL_SECONDS + calls.POLL_READ_MARGIN)


class Client:
    """Signs every call with the client's Ed25519 key; errors raise CustodyAPIError.

    `http`: an httpx.Client of your own (proxies, TLS settings, a test transport); it is not
    closed by `close()`.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        private_key: Ed25519PrivateKey,
        *,
        http: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._credentials = Credentials(base_url, client_id, private_key)
        self._own_http = http is None
        self._http = http or httpx.Client(timeout=DEFAULT_TIMEOUT, follow_redirects=False)
        self._retry = retry or RetryPolicy()

    @classmethod
    def from_files(
        cls, base_url: str, id_file_or_id: str | Path, pem_path: str | Path, **options: Any
    ) -> Client:
        """From the client id (or a file holding it) and the private key's PEM file."""
        key = load_private_key(Path(pem_path))
        return cls(base_url, read_client_id(id_file_or_id), key, **options)

    @property
    def client_id(self) -> str:
        return self._credentials.client_id

    def create(self, body: Mapping[str, Any], *, idempotency_key: str | None = None) -> Request:
        """Submit a request. One Idempotency-Key per call of `create` (or yours), sent again on
        every retry: however often the network fails, at most one request is made."""
        call = Call(
            "POST",
            calls.REQUESTS,
            calls.encode_body(body),
            idempotency_key=idempotency_key or str(uuid.uuid4()),
        )
        return calls.request_of(self.send(call))

    def get(self, request_id: str) -> Request:
        return calls.request_of(self.send(Call("GET", calls.request_uri(request_id))))

    def list(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> RequestPage:
        """One page of this client's requests, newest first (`next_cursor` for the next)."""
        uri = calls.list_uri(status, limit, cursor)
        return RequestPage.from_json(calls.answer(self.send(Call("GET", uri))))

    def cancel(self, request_id: str) -> Request:
        return calls.request_of(self.send(Call("POST", calls.cancel_uri(request_id))))

    def wait(
        self,
        request: str | Request,
        *,
        timeout: float = 60.0,
        until: Iterable[str] | str | None = None,
    ) -> Request:
        """The request once final, in a status of `until` (or past `signed` on its way to
        `confirmed`, when waiting for it), or settled where nothing will move it; long polls,
        no sleeping. WaitTimedOut (with the last `request`) after `timeout` seconds.

        `request`: its id, or the Request as last seen (`create`'s answer): no read comes
        before the first poll then."""
        goal = Goal.of(until)
        deadline = time.monotonic() + timeout
        # A Request (a create's answer, an earlier read) saves reading it again: the polls
        # name its status, and the server answers at once if it has changed since.
        current = request if isinstance(request, Request) else self.get(request)
        request_id = current.id
        while not goal.reached(current):
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimedOut(current, timeout)
            asked = calls.poll_seconds(left)
            started = time.monotonic()
            call = calls.poll_call(request_id, asked, seen=current.status)
            latest = calls.request_of(self.send(call))
            if calls.settled(current, latest, asked, time.monotonic() - started):
                return latest
            current = latest
        return current

    def webhook_public_key(self) -> WebhookPublicKey:
        data = calls.answer(self.send(Call("GET", "/v1/webhooks/public-key")))
        return WebhookPublicKey.from_json(data)

    def send(self, call: Call) -> httpx.Response:
        """One signed call, retried as `retry` allows; the last answer (error or not)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.send(self._credentials.build(self._http, call))
            except httpx.TransportError as exc:
                delay = self._retry.after_failure(call, exc, attempt)
                if delay is None:
                    raise ConnectionFailed(f"{call.method} {call.uri}: {exc!r}") from exc
                time.sleep(delay)
                continue
            delay = self._retry.after_answer(call, response, attempt)
            if delay is None:
                return response
            time.sleep(delay)

    def close(self) -> None:
        if self._own_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
