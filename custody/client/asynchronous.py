"""`AsyncClient`: the same API as `Client`, over httpx.AsyncClient (same retries, same waits)."""

from __future__ import annotations

import asyncio
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
from custody.client.sync import DEFAULT_TIMEOUT
from custody.client.tokens import load_private_key, read_client_id


class AsyncClient:
    """See `Client`; every method is a coroutine. `http`: an httpx.AsyncClient of your own."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        private_key: Ed25519PrivateKey,
        *,
        http: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._credentials = Credentials(base_url, client_id, private_key)
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, follow_redirects=False)
        self._retry = retry or RetryPolicy()

    @classmethod
    def from_files(
        cls, base_url: str, id_file_or_id: str | Path, pem_path: str | Path, **options: Any
    ) -> AsyncClient:
        key = load_private_key(Path(pem_path))
        return cls(base_url, read_client_id(id_file_or_id), key, **options)

    @property
    def client_id(self) -> str:
        return self._credentials.client_id

    async def create(
        self, body: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Request:
        call = Call(
            "POST",
            calls.REQUESTS,
            calls.encode_body(body),
            idempotency_key=idempotency_key or str(uuid.uuid4()),
        )
        return calls.request_of(await self.send(call))

    async def get(self, request_id: str) -> Request:
        return calls.request_of(await self.send(Call("GET", calls.request_uri(request_id))))

    async def list(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> RequestPage:
        uri = calls.list_uri(status, limit, cursor)
        return RequestPage.from_json(calls.answer(await self.send(Call("GET", uri))))

    async def cancel(self, request_id: str) -> Request:
        return calls.request_of(await self.send(Call("POST", calls.cancel_uri(request_id))))

    async def wait(
        self,
        request: str | Request,
        *,
        timeout: float = 60.0,
        until: Iterable[str] | str | None = None,
    ) -> Request:
        goal = Goal.of(until)
        deadline = time.monotonic() + timeout
        # A Request (a create's answer, an earlier read) saves reading it again: the polls
        # name its status, and the server answers at once if it has changed since.
        current = request if isinstance(request, Request) else await self.get(request)
        request_id = current.id
        while not goal.reached(current):
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimedOut(current, timeout)
            asked = calls.poll_seconds(left)
            started = time.monotonic()
            call = calls.poll_call(request_id, asked, seen=current.status)
            latest = calls.request_of(await self.send(call))
            if calls.settled(current, latest, asked, time.monotonic() - started):
                return latest
            current = latest
        return current

    async def webhook_public_key(self) -> WebhookPublicKey:
        data = calls.answer(await self.send(Call("GET", "/v1/webhooks/public-key")))
        return WebhookPublicKey.from_json(data)

    async def send(self, call: Call) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.send(self._credentials.build(self._http, call))
            except httpx.TransportError as exc:
                delay = self._retry.after_failure(call, exc, attempt)
                if delay is None:
                    raise ConnectionFailed(f"{call.method} {call.uri}: {exc!r}") from exc
                await asyncio.sleep(delay)
                continue
            delay = self._retry.after_answer(call, response, attempt)
            if delay is None:
                return response
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.aclose()
