"""The queries of custody.hsmhealth: login holds and signer reports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from custody.store.models import HsmLoginHold, HsmStatus


def all_holds(session: Session) -> Sequence[HsmLoginHold]:
    return session.execute(select(HsmLoginHold).order_by(HsmLoginHold.token_label)).scalars().all()


def delete_hold(session: Session, token_label: str) -> bool:
    result = session.execute(delete(HsmLoginHold).where(HsmLoginHold.token_label == token_label))
    return bool(getattr(result, "rowcount", 0))


def delete_report(session: Session, process: str) -> None:
    session.execute(delete(HsmStatus).where(HsmStatus.process == process))


def reports_since(session: Session, cutoff: datetime) -> Sequence[HsmStatus]:
    return (
        session.execute(
            select(HsmStatus)
            .where(HsmStatus.checked_at >= cutoff)
            .order_by(HsmStatus.checked_at.desc())
        )
        .scalars()
        .all()
    )
