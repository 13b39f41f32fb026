"""Rate limits: token buckets per source address, per API client and per signed-in approver.

Four kinds of bucket, each a rate (tokens per second) and a burst (the bucket's size):

- `address`: every request to the API and the approver app, keyed by source address, charged by
  the `RateLimit` middleware before anything else runs (no token is verified, no body read, no
  row read or written), so token guessing and request floods are bounded per address;
- `sign_in`: the approver app's unauthenticated credential endpoints (passkey sign-in,
  enrolment pages and ceremonies) by source address, on top of `address`: each sign-in prompt
  writes a challenge row, and an enrolment link is a secret worth guessing at;
- `client`: an API client, charged once its token's signature verified (an unverified `sub`
  could spend someone else's budget) and before its nonce is written;
- `approver`: a signed-in approver of the web app, charged once the session was looked up (and
  an approver's device-key approval over the API, once its signature verified).

A refused call is a 429 problem with `Retry-After`, raised before the call's write transaction:
it changes nothing in the database. Health endpoints and static files are never limited.

Buckets live in the memory of one server process: N processes (or hosts) behind a load
balancer admit up to N times the configured rates. Memory stays bounded under an attacker who
sprays source addresses: a bucket idle long enough to be full again is forgotten (a full bucket
and a missing one admit alike), and each kind tracks at most `max_keys` buckets, dropping the
least recently used one beyond that. IPv6 sources are keyed by their prefix (/64 by default),
since one host commonly holds a whole /64.

The source address is the ASGI client address (the TCP peer). `X-Forwarded-For` is believed only
when that peer is a configured trusted proxy, and then only as far as the chain of trusted
proxies reaches: the address is the right-most entry that is not itself a trusted proxy.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from custody.errors import CustodyError
from custody.http.problems import problem
from custody.settings import Settings

Clock = Callable[[], float]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Never limited: load balancers and monitoring poll them, and they change nothing.
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
MAX_KEY_LENGTH = 100  # a non-IP client "address" (a test client, a unix socket) is cut to this


class Kind(StrEnum):
    ADDRESS = "address"
    SIGN_IN = "sign_in"
    CLIENT = "client"
    APPROVER = "approver"


_TOO_MANY = {
    Kind.ADDRESS: "requests from this address",
    Kind.SIGN_IN: "sign-in and enrolment attempts from this address",
    Kind.CLIENT: "requests from this client",
    Kind.APPROVER: "requests from this approver",
}


class RateLimited(CustodyError):
    status = 429
    title = "Too many requests"
    slug = "rate-limited"

    def __init__(self, kind: Kind, wait_seconds: float) -> None:
        self.kind = kind
        # Whole seconds (RFC 9110), never 0: a client told to retry at once would only be
        # refused again.
        self.retry_after = max(1, math.ceil(wait_seconds))
        super().__init__(
            f"too many {_TOO_MANY[kind]}; try again in {self.retry_after} s (rate limit: {kind})"
        )

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int

    @property
    def refill_seconds(self) -> float:
        """How long an empty bucket takes to fill: after that, any bucket is full."""
        return self.burst / self.per_second


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class Buckets:
    """Token buckets of one rate, one per key, at most `max_keys` of them; thread-safe (the API's
    dependencies run in worker threads, the middleware on the event loop)."""

    def __init__(self, rate: Rate, *, max_keys: int, clock: Clock) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """Take one token for `key`: 0.0 when admitted, else the seconds until one is there
        (a refused call takes nothing)."""
        rate = self.rate
        with self._lock:
            now = self._clock()  # under the lock: buckets stay in the order of their stamps
            self._forget_full(now)
            bucket = self._buckets.pop(key, None)
            if bucket is None:
                tokens = float(rate.burst)
            else:
                elapsed = max(0.0, now - bucket.stamp)
                tokens = min(float(rate.burst), bucket.tokens + elapsed * rate.per_second)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / rate.per_second
            if wait == 0.0:
                tokens -= 1
            self._buckets[key] = _Bucket(tokens, now)
            if len(self._buckets) > self.max_keys:
                # Only under a flood of distinct keys: the least recently seen one starts afresh.
                self._buckets.popitem(last=False)
            return wait

    def _forget_full(self, now: float) -> None:
        """Drop buckets idle for a whole refill: they are full, like a bucket never seen.

        Every take moves its bucket to the end with `stamp = now`, so the oldest come first and
        the sweep stops at the first one still filling: amortised O(1) per take.
        """
        refill = self.rate.refill_seconds
        while self._buckets:
            oldest = next(iter(self._buckets.values()))
            if now - oldest.stamp < refill:
                return
            self._buckets.popitem(last=False)


class RateLimits:
    """The buckets of one server process, built from the settings (`rates`: the kinds limited;
    the application always gets all four)."""

    def __init__(
        self,
        *,
        rates: dict[Kind, Rate],
        enabled: bool = True,
        trusted_proxies: Sequence[Network] = (),
        ipv6_prefix: int = 64,
        max_keys: int = 50_000,
        clock: Clock = time.monotonic,
    ) -> None:
        self.enabled = enabled
        self.trusted_proxies = tuple(trusted_proxies)
        self.ipv6_prefix = ipv6_prefix
        self.buckets = {
            kind: Buckets(rate, max_keys=max_keys, clock=clock) for kind, rate in rates.items()
        }

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock = time.monotonic) -> RateLimits:
        s = settings
        return cls(
            rates={
                Kind.ADDRESS: Rate(s.rate_limit_address_per_second, s.rate_limit_address_burst),
                Kind.SIGN_IN: Rate(s.rate_limit_sign_in_per_second, s.rate_limit_sign_in_burst),
                Kind.CLIENT: Rate(s.rate_limit_client_per_second, s.rate_limit_client_burst),
                Kind.APPROVER: Rate(s.rate_limit_approver_per_second, s.rate_limit_approver_burst),
            },
            enabled=s.rate_limits,
            trusted_proxies=s.trusted_proxies,
            ipv6_prefix=s.rate_limit_ipv6_prefix,
            max_keys=s.rate_limit_max_keys,
            clock=clock,
        )

    def admit(self, kind: Kind, key: str) -> None:
        """Take a token from `key`'s bucket of this kind, or raise RateLimited."""
        buckets = self.buckets.get(kind)
        if not self.enabled or buckets is None:
            return
        wait = buckets.take(key)
        if wait > 0:
            raise RateLimited(kind, wait)

    def admit_client(self, client_id: str) -> None:
        self.admit(Kind.CLIENT, client_id)

    def admit_approver(self, approver_id: str) -> None:
        self.admit(Kind.APPROVER, approver_id)

    def source(self, scope: Scope) -> str:
        """The bucket key of the call's source address (see the module docstring)."""
        client = scope.get("client")
        peer = str(client[0]) if client else ""
        if not peer:
            return "unknown"
        address = _ip(peer)
        if address is not None and self._trusted(address):
            address = self._forwarded_for(scope, address)
        if address is None:
            return peer[:MAX_KEY_LENGTH]
        return self._key(address)

    def _trusted(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address in network for network in self.trusted_proxies)

    def _forwarded_for(
        self, scope: Scope, peer: ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """Walk X-Forwarded-For from the right (the hop nearest to us) past trusted proxies.

        Entries left of the first untrusted one were written by whoever sent the request and
        prove nothing. An entry that is not an address stops the walk at the last trusted hop.
        """
        entries = [
            entry.strip()
            for name, value in scope.get("headers", [])
            if name == b"x-forwarded-for"
            for entry in value.decode("latin-1").split(",")
        ]
        hop = peer
        for entry in reversed(entries):
            address = _ip(entry)
            if address is None:
                return hop
            if not self._trusted(address):
                return address
            hop = address
        return hop

    def _key(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
        if isinstance(address, ipaddress.IPv6Address):
            return str(ipaddress.IPv6Network((address, self.ipv6_prefix), strict=False))
        return str(address)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as proxies write it: bare, `[v6]`, `[v6]:port` or `v4:port`; IPv4 as IPv4."""
    candidate = text.strip()
    if candidate.startswith("["):
        candidate = candidate[1:].split("]", 1)[0]
    elif candidate.count(":") == 1:
        candidate = candidate.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket's spelling of an IPv4 peer
    return address


Renderer = Callable[[Request, RateLimited], Response]


def problem_refusal(request: Request, exc: RateLimited) -> Response:
    return problem(
        exc.status,
        exc.title,
        exc.message,
        exc.slug,
        instance=request.url.path,
        headers=exc.headers(),
    )


class RateLimit:
    """Pure ASGI middleware: the per-address buckets, before any other work on a call.

    `sign_in_paths`: path prefixes that also spend the `sign_in` bucket; `static_paths`: path
    prefixes of static files, not limited (files from disk, no database; and a refusal page
    must find its stylesheet). `render` answers a refusal (problem+json by default; the
    application passes one that shows the approver app's pages a readable page).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: RateLimits,
        sign_in_paths: tuple[str, ...] = (),
        static_paths: tuple[str, ...] = (),
        render: Renderer = problem_refusal,
    ) -> None:
        self.app = app
        self.limits = limits
        self.sign_in_paths = sign_in_paths
        self.static_paths = static_paths
        self.render = render

    def _unlimited(self, scope: Scope) -> bool:
        path: str = scope.get("path", "")
        return (
            scope["type"] != "http"
            or not self.limits.enabled
            or path in UNLIMITED_PATHS
            or path.startswith(self.static_paths)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._unlimited(scope):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        source = self.limits.source(scope)
        try:
            self.limits.admit(Kind.ADDRESS, source)
            if path.startswith(self.sign_in_paths):
                self.limits.admit(Kind.SIGN_IN, source)
        except RateLimited as refused:
            response = self.render(Request(scope, receive), refused)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def rate_limits(request: Request) -> RateLimits:
    """The process's buckets, which the application put on its (and the web app's) state
    (`async`: no worker thread for a lookup, custody.http.deps)."""
    limits: RateLimits = request.app.state.rate_limits
    return limits


RateLimitsDep = Annotated[RateLimits, Depends(rate_limits)]
