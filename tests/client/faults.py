"""Network faults between the SDK and a real server, injected in the client's httpx transport."""

from __future__ import annotations

import httpx

UNAVAILABLE = {
    "type": "https://custody.dev/problems/unavailable",
    "title": "Service unavailable",
    "status": 503,
    "detail": "the HSM is not reachable",
}


class LosesFirstAnswer(httpx.HTTPTransport):
    """Every call reaches the server; the answer to the first POST is lost on its way back, after
    the server acted on it (the case an Idempotency-Key exists for)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        response = super().handle_request(request)
        if request.method == "POST" and len(self.posts) == 1:
            response.read()
            response.close()
            raise httpx.ReadError("connection reset before the answer arrived", request=request)
        return response

    @property
    def posts(self) -> list[httpx.Request]:
        return [r for r in self.sent if r.method == "POST"]


class AsyncLosesFirstAnswer(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        response = await super().handle_async_request(request)
        if request.method == "POST" and len(self.posts) == 1:
            await response.aread()
            await response.aclose()
            raise httpx.ReadError("connection reset before the answer arrived", request=request)
        return response

    @property
    def posts(self) -> list[httpx.Request]:
        return [r for r in self.sent if r.method == "POST"]


class UnavailableFirst(httpx.HTTPTransport):
    """The first `outages` POSTs answer 503 with `Retry-After` (as custody does while its HSM is
    out) without reaching the server; later calls go through."""

    def __init__(self, outages: int, retry_after: str = "1") -> None:
        super().__init__()
        self.outages = outages
        self.retry_after = retry_after
        self.posts: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.posts.append(request)
            if len(self.posts) <= self.outages:
                headers = {"Retry-After": self.retry_after}
                return httpx.Response(503, headers=headers, json=UNAVAILABLE, request=request)
        return super().handle_request(request)
