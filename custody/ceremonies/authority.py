"""Who may let a ceremony record itself: the hook each ceremony calls in its recording
transaction. Under governance it is custody.approvals.ceremony_approvals.use (which sits above
this package), checking the quorum and using up the proposal; what it returns joins the
ceremony's ledger entry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

Authorise = Callable[[Session], dict[str, Any]]


def ungoverned(_session: Session) -> dict[str, Any]:
    """No governance: the ceremony runs, and its ledger entry records who ran it."""
    return {}
