"""Operations: liveness, readiness (database and HSM reachable) and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from custody.api.deps import RuntimeDep
from custody.api.problems import problem
from custody.errors import CustodyError

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Database and HSM are reachable", response_model=None)
def readyz(rt: RuntimeDep) -> dict[str, Any] | Response:
    checks: dict[str, str] = {}
    try:
        with rt.db.read() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except CustodyError as exc:
        checks["database"] = exc.message
    try:
        rt.token().get_key(rt.settings.ledger_key_label)
        checks["hsm"] = "ok"
    except CustodyError as exc:
        checks["hsm"] = exc.message
    if all(v == "ok" for v in checks.values()):
        return {"status": "ready", "checks": checks}
    failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
    return problem(503, "Not ready", failing, "not-ready", checks=checks)


@router.get("/metrics", summary="Prometheus metrics")
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
