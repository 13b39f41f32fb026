"""Operations: liveness, readiness (database and HSM reachable) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from custody.api.deps import RuntimeDep
from custody.api.schemas import Health, Readiness, ReadinessChecks
from custody.errors import CustodyError
from custody.http.problems import problem, problem_responses
from custody.store.errors import RETRY_OUTAGE_SECONDS

router = APIRouter(tags=["operations"])
# The longest the database check waits: a frozen server must not freeze the readiness check.
DATABASE_CHECK_SECONDS = 0.8


@router.get("/healthz", summary="The process is alive")
async def healthz() -> Health:
    # On the event loop, not in the thread pool: it answers even when every pooled thread
    # waits on the database or the HSM.
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Database and HSM are reachable",
    response_model=Readiness,
    responses=problem_responses(503),
)
def readyz(rt: RuntimeDep) -> Readiness | Response:
    """Not ready: a 503 problem whose `checks` member says what failed."""
    checks: dict[str, str] = {"database": rt.db.unanswered(DATABASE_CHECK_SECONDS) or "ok"}
    try:
        rt.token().get_key(rt.settings.ledger_key_label)
        checks["hsm"] = "ok"
    except CustodyError as exc:
        checks["hsm"] = exc.message
    if all(v == "ok" for v in checks.values()):
        return Readiness(status="ready", checks=ReadinessChecks.model_validate(checks))
    failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
    retry = {"Retry-After": str(RETRY_OUTAGE_SECONDS)}
    return problem(503, "Not ready", failing, "not-ready", checks=checks, headers=retry)


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
