"""The one error base of custody: every domain error knows its HTTP status.

The API renders these as RFC 9457 problem+json; the CLI prints their message as one line.
Messages must never contain secrets (PINs, private keys): they reach logs and clients.
"""

from __future__ import annotations


class CustodyError(Exception):
    """A refusal or failure with a message fit for the person who caused it."""

    status: int = 400
    title: str = "Bad request"
    slug: str = "bad-request"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    @property
    def type_uri(self) -> str:
        return f"https://custody.dev/problems/{self.slug}"

    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides its problem body (`Retry-After` on a 429)."""
        return {}

    def diagnosis(self) -> str:
        """The message with what only the operator may see (a driver's words naming a host and
        port): for the command line and the server log, never for an HTTP answer."""
        return self.message


class ValidationFailed(CustodyError):
    status = 422
    title = "Invalid request"
    slug = "invalid-request"


class NotFound(CustodyError):
    status = 404
    title = "Not found"
    slug = "not-found"


class Conflict(CustodyError):
    status = 409
    title = "Conflict"
    slug = "conflict"


class AlreadyExists(Conflict):
    slug = "already-exists"


class Unauthorized(CustodyError):
    status = 401
    title = "Unauthorized"
    slug = "unauthorized"


class Forbidden(CustodyError):
    status = 403
    title = "Forbidden"
    slug = "forbidden"


class Unavailable(CustodyError):
    """Something custody depends on cannot be used now. With `retry_after` set, the outage is one
    a client should simply wait out: the answer says when to try again (`Retry-After`)."""

    status = 503
    title = "Service unavailable"
    slug = "unavailable"
    retry_after: int | None = None

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
