"""The governance quorum a ceremony command needs (custody.approvals.ceremony_approvals)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from custody.ceremonies.authority import Authorise
from custody.runtime import Runtime


def required(rt: Runtime, kind: str, subject: dict[str, Any]) -> Authorise:
    """Refuse now, before anything happens, a ceremony the governance has not approved; the
    hook that checks again and uses the proposal up when the ceremony records itself."""
    from custody.approvals import ceremony_approvals

    with rt.db.read() as session:
        ceremony_approvals.authorised(session, kind, subject)

    def use(session: Session) -> dict[str, Any]:
        return ceremony_approvals.use(session, kind, subject)

    return use
