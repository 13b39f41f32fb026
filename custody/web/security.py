"""Headers and checks every response and POST of the web app gets.

The Content-Security-Policy allows scripts and styles from the app's own static files only (no
inline code), so injected markup cannot run. Every POST must carry an `Origin` equal to the
configured public URL: with SameSite=Strict cookies and the CSRF token, a third line of defence.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Next = Callable[[Request], Awaitable[Response]]


def origin_allowed(request: Request, public_url: str) -> bool:
    if request.method not in UNSAFE_METHODS:
        return True
    return request.headers.get("origin") == public_url


def harden(response: Response, *, static: bool) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if not static:
        response.headers.setdefault("Cache-Control", "no-store")
    return response
