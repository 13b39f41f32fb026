"""Operations: liveness, readiness (database and HSM reachable) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from custody.api.deps import RuntimeDep
from custody.api.schemas import Health, Readiness, ReadinessChecks
from custody.errors import CustodyError
from custody.hsm.errors import LoginHeld
from custody.hsmhealth import holds, status
from custody.hsmhealth.status import HsmState
from custody.http.problems import problem, problem_responses
from custody.runtime import Runtime, token_label_of

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Database and HSM are reachable",
    response_model=Readiness,
    responses=problem_responses(503),
)
def readyz(rt: RuntimeDep) -> Readiness | Response:
    """Not ready: a 503 problem whose `checks` member says what failed."""
    checks: dict[str, str] = {}
    try:
        with rt.db.read() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except CustodyError as exc:
        checks["database"] = exc.message
    checks["hsm"] = hsm_check(rt)
    if all(v == "ok" for v in checks.values()):
        return Readiness(status="ready", checks=ReadinessChecks.model_validate(checks))
    failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
    return problem(503, "Not ready", failing, "not-ready", checks=checks)


def hsm_check(rt: Runtime) -> str:
    """ "ok", or what is wrong with the HSM. The signer processes' reports answer when they are
    fresh (custody.hsmhealth.status): the API then never waits on an HSM that hangs. Without a
    signer reporting, this process looks itself."""
    try:
        with rt.db.read() as session:
            hold = holds.hold_on(session, token_label_of(rt.settings))
            report = status.current(session, max_age_seconds=status.STALE_AFTER_SECONDS)
    except CustodyError:
        hold, report = None, None  # the database check says why
    if hold is not None:
        return LoginHeld(hold.token_label, hold.since).message
    if report is not None:
        return "ok" if report.state is HsmState.OK else report.detail
    try:
        rt.token().get_key(rt.settings.ledger_key_label)
    except CustodyError as exc:
        return exc.message
    return "ok"


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
