"""How long a request may wait for approvals before it expires."""

from __future__ import annotations

from datetime import datetime, timedelta

from custody.policy import RequireApprovals

DEFAULT_APPROVAL_WINDOW = timedelta(hours=24)


def approval_deadline(decision: RequireApprovals, since: datetime) -> datetime:
    """From when the request (again) started waiting: the rule's `expires_after`, or a day."""
    window = (
        timedelta(seconds=decision.expires_after_seconds)
        if decision.expires_after_seconds
        else DEFAULT_APPROVAL_WINDOW
    )
    return since + window
