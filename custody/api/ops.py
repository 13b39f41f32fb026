"""Operations: liveness, readiness (database and HSM reachable) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from custody.api.deps import RuntimeDep
from custody.api.schemas import Health, Readiness, ReadinessChecks
from custody.errors import CustodyError
from custody.hsm.errors import LoginHeld
from custody.hsmhealth import holds, status
from custody.hsmhealth.status import HsmState
from custody.http.problems import problem, problem_responses
from custody.metrics.collector import registry_for
from custody.runtime import Runtime, token_label_of
from custody.store.errors import RETRY_OUTAGE_SECONDS

router = APIRouter(tags=["operations"])
# The longest the database check waits: a frozen server must not freeze the readiness check.
DATABASE_CHECK_SECONDS = 0.8
HSM_UNKNOWN = "not checked: the signers report the HSM's state through the database"


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
    # The HSM's state is read from the database: with the database down it cannot be known
    # within the second this answer has.
    checks["hsm"] = hsm_check(rt) if checks["database"] == "ok" else HSM_UNKNOWN
    if all(v == "ok" for v in checks.values()):
        return Readiness(status="ready", checks=ReadinessChecks.model_validate(checks))
    failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
    retry = {"Retry-After": str(RETRY_OUTAGE_SECONDS)}
    return problem(503, "Not ready", failing, "not-ready", checks=checks, headers=retry)


def hsm_check(rt: Runtime) -> str:
    """ "ok", or what is wrong with the HSM. The signer processes' reports answer when they are
    fresh (custody.hsmhealth.status): the API then never waits on an HSM that hangs. Without a
    signer reporting, this process looks itself."""
    try:
        with rt.db.read() as session:
            hold = holds.hold_on(session, token_label_of(rt.settings))
            report = status.current(
                session,
                max_age_seconds=status.STALE_AFTER_SECONDS,
                # the main token's reports: the ledger and configuration keys are there, and an
                # extra token that fails only makes the requests of its keys wait
                skip_tokens=set(rt.settings.extra_token_labels.values()),
            )
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
def metrics(rt: RuntimeDep) -> Response:
    """The process's own metrics and the installation's `custody_*` metrics, read from the
    database (custody.metrics): whichever API process answers, it answers for all of them."""
    body = generate_latest() + generate_latest(registry_for(rt))
    return Response(body, media_type=CONTENT_TYPE_LATEST)
