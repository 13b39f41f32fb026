"""RFC 9457 problem details for every error the API returns."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from custody import callid
from custody.errors import CustodyError
from custody.jsonshape import absent

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("custody.api")


class Problem(BaseModel):
    """RFC 9457 problem details, the body of every error answer."""

    # Some problems carry more members (`checks` when /readyz is not ready), as RFC 9457 allows.
    model_config = ConfigDict(extra="allow", frozen=True)

    type: str = Field(description="URI naming the kind of problem")
    title: str
    status: int
    detail: str = Field(description="what went wrong, for the person who caused it")
    instance: str | None = absent("the path that was called")


_MEANINGS = {
    400: "Bad request",
    401: "Missing, expired, replayed or wrongly signed token (or approval signature)",
    403: "Not allowed for this client's role, or for this approver",
    404: "No such resource (another client's requests are not found either)",
    409: "Conflicts with the current state: Idempotency-Key reused with another body, nonce "
    "taken, or the request has moved on",
    413: "Body larger than this installation accepts",
    422: "Invalid request: not strict JSON (floats, duplicate keys), unknown fields, bad values",
    429: "Too many requests from this source address, client or approver; `Retry-After` says "
    "when to retry",
    500: "Internal error; details only in the server log",
    503: "Database or HSM unreachable; with `Retry-After`, an outage to wait out and retry",
}
_RETRY_AFTER = {
    429: {
        "description": "whole seconds to wait before the limit admits another call",
        "schema": {"type": "integer", "minimum": 1},
    },
    503: {
        "description": "whole seconds to wait before trying again (a POST with the same "
        "Idempotency-Key: the call may have been recorded before the outage)",
        "schema": {"type": "integer", "minimum": 1},
    },
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for error statuses, each an application/problem+json body."""
    schema = {"$ref": "#/components/schemas/Problem"}
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response = {"description": _MEANINGS[status], "content": {PROBLEM_JSON: {"schema": schema}}}
        if status in _RETRY_AFTER:
            response["headers"] = {"Retry-After": _RETRY_AFTER[status]}
        responses[status] = response
    return responses


def problem(
    status: int,
    title: str,
    detail: str,
    slug: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": f"https://custody.dev/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
        **extra,
    }
    sent = dict(headers or {})
    if status == 401:
        sent.setdefault("WWW-Authenticate", 'Bearer realm="custody"')
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=sent or None)


def install(app: FastAPI) -> None:
    @app.exception_handler(CustodyError)
    async def _custody(request: Request, exc: CustodyError) -> JSONResponse:
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc.message)
        return problem(
            exc.status,
            exc.title,
            exc.message,
            exc.slug,
            instance=request.url.path,
            headers=exc.headers(),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        return problem(
            422, "Invalid request", details, "invalid-request", instance=request.url.path
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(
            exc.status_code,
            str(exc.detail),
            str(exc.detail),
            "http-error",
            instance=request.url.path,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Fail closed and say nothing internal: details go to the server log only.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            500,
            "Internal error",
            "internal error; see the server log",
            "internal-error",
            instance=request.url.path,
            # Answered outside custody.http.callid (by Starlette's outermost middleware): the
            # id the client will quote is added here, from the call's context.
            headers={callid.HEADER: callid.current() or callid.new()},
        )
