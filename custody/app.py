"""The whole ASGI application: the trading API, the approver app mounted at /app, problem+json
errors, body limits, and the in-process signer, checkpointer and webhook threads."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from custody import __version__, tracing
from custody.api import ceremonies as ceremony_routes
from custody.api import configuration as configuration_routes
from custody.api import freezes as freeze_routes
from custody.api import ledger as ledger_routes
from custody.api import openapi, ops
from custody.api import policy as policy_routes
from custody.api import requests as request_routes
from custody.api import wallets as wallet_routes
from custody.api import webhooks as webhook_routes
from custody.broadcast.runner import start_broadcaster
from custody.freezes.breakers import freeze_on_fork
from custody.http import problems
from custody.http.callid import CallId
from custody.http.limits import MaxBodySize
from custody.http.ratelimit import RateLimit, RateLimited, RateLimits, problem_refusal
from custody.http.tracing import TracedCalls
from custody.ledger.checkpointer import start_checkpointer
from custody.runtime import Runtime
from custody.seals.hooks import install as install_seal_hooks
from custody.web import app as web
from custody.webhooks.runner import start_webhooks


def create_app(
    runtime: Runtime, *, run_worker: bool | None = None, limits: RateLimits | None = None
) -> FastAPI:
    """`limits`: the rate limit buckets; by default this process's own, from the settings."""
    start_worker = runtime.settings.worker_in_process if run_worker is None else run_worker
    # Passkey enrolment, governance activations and operator calls change configuration here.
    install_seal_hooks(runtime)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        thread = None
        checkpointer = (
            start_checkpointer(runtime, stop, on_fork=freeze_on_fork) if start_worker else None
        )
        webhooks = start_webhooks(runtime, stop) if start_worker else None
        broadcaster = start_broadcaster(runtime, stop) if start_worker else None
        if start_worker:
            from custody.signing.worker import SignerWorker

            worker = SignerWorker(runtime)
            runtime.attach_signer(worker.wake)
            thread = threading.Thread(target=worker.run, args=(stop,), name="signer", daemon=True)
            thread.start()
        yield
        stop.set()
        runtime.notify_signer()
        for running in (thread, checkpointer, webhooks, broadcaster):
            if running is not None:
                running.join(timeout=10)

    app = FastAPI(
        title="custody",
        version=__version__,
        summary="Policy-gated, HSM-backed signing for institutions.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    limits = limits or RateLimits.from_settings(runtime.settings)
    app.state.rate_limits = limits
    problems.install(app)
    openapi.install(app)
    app.include_router(request_routes.router)
    app.include_router(policy_routes.router)
    app.include_router(freeze_routes.router)
    app.include_router(ceremony_routes.router)
    app.include_router(configuration_routes.router)
    app.include_router(ledger_routes.router)
    app.include_router(webhook_routes.router)
    app.include_router(wallet_routes.router)
    app.include_router(ops.router)
    web.mount(app, runtime, limits)
    app.add_middleware(MaxBodySize, max_bytes=runtime.settings.max_body_bytes)
    # Before any work: a call over its source address's limit is refused before any other work.
    app.add_middleware(
        RateLimit,
        limits=limits,
        sign_in_paths=web.SIGN_IN_PATHS,
        static_paths=web.STATIC_PATHS,
        render=_refusal,
    )
    # A span per call, naming its X-Request-Id, only when tracing is on (custody.tracing): off,
    # the app has no tracing layer at all.
    if tracing.enabled():
        app.add_middleware(TracedCalls)
    # Outermost of all: every answer, a refusal too, carries the call's X-Request-Id, and every
    # log line written while it is served names it.
    app.add_middleware(CallId)
    return app


def _refusal(request: Request, exc: RateLimited) -> Response:
    if web.serves(request.url.path):
        return web.refusal(request, exc)
    return problem_refusal(request, exc)
