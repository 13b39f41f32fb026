"""What signer processes last found of the HSM, written as they work and read by everyone else.

Each signer process keeps one row per token it signs with up to date: on every change of state at
once, and otherwise every few seconds (`hsm_check_seconds`). `/readyz`, the request views and
`custody hsm status` read the freshest rows, so an API process learns of an outage (and of the
recovery) within seconds without calling the HSM itself.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy.orm import Session

from custody.hsmhealth import repository
from custody.store.base import utcnow
from custody.store.models import HsmStatus

# A report older than this is of a process that died without withdrawing it (signers report at
# least every `hsm_check_seconds`, at most 10).
STALE_AFTER_SECONDS = 30.0


class HsmState(StrEnum):
    OK = "ok"
    UNAVAILABLE = "unavailable"
    LOGIN_HELD = "login_held"


@dataclass(frozen=True)
class Report:
    process: str
    token_label: str
    state: HsmState
    detail: str
    since: datetime
    checked_at: datetime


def report(
    session: Session,
    *,
    process: str,
    token_label: str,
    state: HsmState,
    detail: str,
    since: datetime,
) -> None:
    row = session.get(HsmStatus, (process, token_label))
    now = utcnow()
    if row is None:
        session.add(
            HsmStatus(
                process=process,
                token_label=token_label,
                state=state.value,
                detail=detail,
                since=since,
                checked_at=now,
            )
        )
        return
    row.state, row.detail = state.value, detail
    row.since, row.checked_at = since, now


def withdraw(session: Session, process: str) -> None:
    """A process that stops cleanly takes its reports with it."""
    repository.delete_report(session, process)


def fresh_reports(session: Session, *, max_age_seconds: float) -> list[Report]:
    """Reports checked within `max_age_seconds`, newest first; older ones are of processes that
    died without withdrawing theirs."""
    cutoff = utcnow() - timedelta(seconds=max_age_seconds)
    rows = repository.reports_since(session, cutoff)
    return [
        Report(r.process, r.token_label, HsmState(r.state), r.detail, r.since, r.checked_at)
        for r in rows
    ]


def current(
    session: Session, *, max_age_seconds: float, skip_tokens: Collection[str] = ()
) -> Report | None:
    """The HSM as the signers see it now, leaving out the tokens in `skip_tokens`: a problem
    any fresh report names wins over `ok` (one signer process that cannot sign is one too many),
    else the newest report."""
    return _worst(
        r
        for r in fresh_reports(session, max_age_seconds=max_age_seconds)
        if r.token_label not in skip_tokens
    )


def of_token(session: Session, *, max_age_seconds: float, token_label: str) -> Report | None:
    """One token as the signers see it now (the same rule as `current`)."""
    return _worst(
        r
        for r in fresh_reports(session, max_age_seconds=max_age_seconds)
        if r.token_label == token_label
    )


def _worst(found: Iterable[Report]) -> Report | None:
    reports = list(found)
    problems = [r for r in reports if r.state is not HsmState.OK]
    if problems:
        return problems[0]
    return reports[0] if reports else None
