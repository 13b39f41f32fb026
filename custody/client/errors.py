"""What can go wrong for a client, as exceptions: an API answer carries its problem+json.

Every error answer of custody is an RFC 9457 problem (`type`, `title`, `status`, `detail`); the
exception keeps all of it, so code can branch on the class (or `status`) and people read `detail`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class CustodyClientError(Exception):
    """The base of everything this client raises on purpose."""


class CustodyAPIError(CustodyClientError):
    """custody answered with an error: `problem` is the whole problem+json body; `request_id`
    the answer's `X-Request-Id`, which names the call in custody's logs (quote it)."""

    def __init__(
        self,
        status: int,
        problem: Mapping[str, Any],
        *,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        self.status = status
        self.request_id = request_id
        self.problem: dict[str, Any] = dict(problem)
        self.type = str(problem.get("type", "about:blank"))
        self.title = str(problem.get("title", ""))
        self.detail = str(problem.get("detail", ""))
        self.retry_after = retry_after
        super().__init__(f"{status} {self.title}: {self.detail}")


class BadRequest(CustodyAPIError):
    """400: the call itself is malformed."""


class Unauthorized(CustodyAPIError):
    """401: the token was refused; `detail` says which check failed."""


class Forbidden(CustodyAPIError):
    """403: not allowed for this client's role."""


class NotFound(CustodyAPIError):
    """404: no such request among this client's own."""


class Conflict(CustodyAPIError):
    """409: the Idempotency-Key was used with another body, the nonce is taken, or the request
    has moved on (cancelling a signed request)."""


class PayloadTooLarge(CustodyAPIError):
    """413."""


class InvalidRequest(CustodyAPIError):
    """422: the body was refused (not strict JSON, unknown fields, bad values); nothing stored."""


class RateLimited(CustodyAPIError):
    """429, once the retries allowed are spent: `retry_after` says when to try again."""


class Unavailable(CustodyAPIError):
    """503, once the retries allowed are spent: the database or HSM is unreachable."""


_BY_STATUS: dict[int, type[CustodyAPIError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidRequest,
    429: RateLimited,
    503: Unavailable,
}


def api_error(
    status: int,
    problem: Mapping[str, Any],
    retry_after: float | None = None,
    request_id: str | None = None,
) -> CustodyAPIError:
    """The exception for an error answer: the subclass of its status, else the base."""
    error = _BY_STATUS.get(status, CustodyAPIError)
    return error(status, problem, retry_after=retry_after, request_id=request_id)


class ConnectionFailed(CustodyClientError):
    """custody could not be reached (or did not answer) within the retries allowed.

    After a `create`, the request may have been recorded: call `create` again with the same
    `idempotency_key` to learn its fate without making a second one.
    """


class WaitTimedOut(CustodyClientError, TimeoutError):
    """`wait` ran out of time; `request` is the request as last seen."""

    def __init__(self, request: Any, timeout: float) -> None:
        self.request = request
        super().__init__(f"request {request.id} still {request.status} after {timeout:g} s")


class WebhookVerificationFailed(CustodyClientError):
    """A webhook body is not one custody signed (or signed too long ago): answer 401, drop it."""
