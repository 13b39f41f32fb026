"""The web app as its own ASGI app mounted at `/app`: its own error pages, headers and checks.

Mounted rather than merged into the API so that its errors are friendly HTML pages (or
problem+json for its few JSON endpoints under `/app/api/`), never the API's problem documents
for pages, and never a stack trace.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from custody.errors import CustodyError
from custody.http.problems import problem
from custody.http.ratelimit import RateLimited, RateLimits
from custody.runtime import Runtime
from custody.store import DatabaseUnavailable
from custody.web import api, pages
from custody.web.errors import CsrfRefused, SignInRequired
from custody.web.render import render
from custody.web.security import Next, harden, origin_allowed

PREFIX = "/app"
# Unauthenticated calls that start or finish a sign-in or an enrolment: besides the per-address
# limit of every call, they spend the stricter `sign_in` bucket of their source address.
SIGN_IN_PATHS = (f"{PREFIX}/api/login/", f"{PREFIX}/api/enrol/", f"{PREFIX}/enrol/")
STATIC_PATHS = (f"{PREFIX}/static/",)
log = logging.getLogger("custody.web")


def create_web_app(runtime: Runtime, limits: RateLimits) -> FastAPI:
    web = FastAPI(title="custody approvals", docs_url=None, redoc_url=None, openapi_url=None)
    web.state.runtime = runtime
    web.state.rate_limits = limits
    web.include_router(pages.router)
    web.include_router(api.router)
    web.mount("/static", StaticFiles(packages=[("custody.web", "static")]), name="static")
    _install_errors(web)

    @web.middleware("http")
    async def _guard(request: Request, call_next: Next) -> Response:
        static = request.url.path.startswith(STATIC_PATHS)
        if not origin_allowed(request, runtime.settings.public_url):
            error = CsrfRefused("this request did not come from the approver app")
            return harden(_error_response(request, error.status, error.title, error), static=False)
        return harden(await call_next(request), static=static)

    return web


def mount(app: FastAPI, runtime: Runtime, limits: RateLimits) -> None:
    """Serve the web app under `/app` of the main application."""

    @app.get(PREFIX, include_in_schema=False)
    def _app_root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    app.mount(PREFIX, create_web_app(runtime, limits))


def serves(path: str) -> bool:
    """Whether a path of the main application belongs to the web app."""
    return path == PREFIX or path.startswith(f"{PREFIX}/")


def refusal(request: Request, exc: RateLimited) -> Response:
    """A 429 before the web app ran (the per-address middleware): a page a person can read, or
    problem+json for the JSON endpoints, with the app's usual headers."""
    return harden(_error_response(request, exc.status, exc.title, exc), static=False)


def _is_json(request: Request) -> bool:
    return request.url.path.startswith(f"{PREFIX}/api/")


# A page for a person holding a phone, not the API's terse problem: what happened, what to do.
_DATABASE_PAGE = (
    "Back in a moment",
    "custody cannot reach its database just now, so this page could not be shown or saved. "
    "Please try again in a minute; if it keeps happening, tell your operator.",
)


def _error_response(request: Request, status: int, title: str, exc: Exception) -> Response:
    message = exc.message if isinstance(exc, CustodyError) else title
    headers = exc.headers() if isinstance(exc, CustodyError) else {}
    if _is_json(request):
        slug = exc.slug if isinstance(exc, CustodyError) else "http-error"
        return problem(status, title, message, slug, instance=request.url.path, headers=headers)
    if isinstance(exc, DatabaseUnavailable):
        title, message = _DATABASE_PAGE
    page = render(
        request, "error.html", {"title": title, "message": message}, status_code=status, user=None
    )
    page.headers.update(headers)
    return page


def _install_errors(web: FastAPI) -> None:
    @web.exception_handler(CustodyError)
    async def _custody(request: Request, exc: CustodyError) -> Response:
        if isinstance(exc, SignInRequired) and not _is_json(request):
            return RedirectResponse(f"{PREFIX}/login", status_code=303)
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc.message)
        return _error_response(request, exc.status, exc.title, exc)

    @web.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        title = "Page not found" if exc.status_code == 404 else str(exc.detail)
        return _error_response(request, exc.status_code, title, exc)

    @web.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return _error_response(request, 422, "That did not look right", exc)

    @web.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error_response(request, 500, "Something went wrong on our side", exc)
