"""Freezes as people and clients see them: the freeze list, and why a request waits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from custody.approvals.schemas import QuorumRequirementView
from custody.freezes import repository
from custody.freezes.schemas import (
    FreezeRef,
    FreezeView,
    UnfreezeDecisionView,
    UnfreezeView,
    WaitingView,
)
from custody.freezes.service import describe_scope, scope_of
from custody.freezes.unfreezes import statement_template
from custody.hsmhealth import status
from custody.hsmhealth.status import HsmState
from custody.store.models import Freeze, Request, Unfreeze

# A request in these states is signed once nothing stops it; the others are past signing.
_LIVE = frozenset({"pending_approval", "approved", "signing"})
# Requests in these states wait for the HSM when it is down; the others wait for people first.
_FOR_THE_HSM = frozenset({"approved", "signing"})


def freeze_views(session: Session, rows: Sequence[Freeze]) -> list[FreezeView]:
    names = repository.wallet_names(session, (r.wallet_id for r in rows if r.wallet_id is not None))
    pending = repository.pending_unfreezes(session, (r.id for r in rows))
    return [
        FreezeView(
            id=row.id,
            **scope_of(row, names.get(row.wallet_id) if row.wallet_id is not None else None),
            reason=row.reason,
            actor=row.actor,
            source=row.source,
            created_at=_rfc3339(row.created_at),
            lifted_at=_rfc3339(row.lifted_at) if row.lifted_at else None,
            lifted_by=row.lifted_by,
            lift_reason=row.lift_reason,
            unfreeze=unfreeze_view(session, pending[row.id]) if row.id in pending else None,
        )
        for row in rows
    ]


def unfreeze_view(session: Session, unfreeze: Unfreeze) -> UnfreezeView:
    decisions = [
        UnfreezeDecisionView(
            approver=approver.name,
            decision=approval.decision,
            at=_rfc3339(approval.created_at),
        )
        for approval, approver in repository.decisions_on(session, unfreeze.id)
    ]
    return UnfreezeView(
        id=unfreeze.id,
        reason=unfreeze.reason,
        requested_by=unfreeze.requested_by,
        requested_at=_rfc3339(unfreeze.requested_at),
        state=unfreeze.state,
        required_approvals=[
            QuorumRequirementView.model_validate(q) for q in json.loads(unfreeze.required_approvals)
        ],
        decisions=decisions,
        statement=statement_template(unfreeze),
    )


class Waiting:
    """Why live requests wait, for one read of the freezes (a page of requests shares it)."""

    def __init__(self, session: Session) -> None:
        # The rows: the signer puts back any that disagree with the ledger (custody.freezes.gate)
        self._active = repository.active(session)
        wallet_ids = (row.wallet_id for row in self._active if row.wallet_id is not None)
        self._names = repository.wallet_names(session, wallet_ids)
        reports = status.fresh_reports(session, max_age_seconds=status.STALE_AFTER_SECONDS)
        # per token: with several, a request waits only for the token its key is on
        self._reported = {r.token_label for r in reports}
        self._problems: dict[str, str] = {}
        for r in reports:
            if r.state is not HsmState.OK:
                self._problems.setdefault(r.token_label, r.detail)
        self._tokens = repository.key_tokens(session) if self._problems else {}

    def _hsm(self, request: Request) -> str | None:
        if not self._problems:
            return None
        token = self._tokens.get(request.wallet_id)
        if token in self._reported:
            return self._problems.get(token)
        # a key whose token no signer names (made before there were several): any problem
        return next(iter(self._problems.values()))

    def of(self, request: Request) -> WaitingView | None:
        if request.status not in _LIVE:
            return None
        covering = [row for row in self._active if row.wallet_id in (None, request.wallet_id)]
        hsm = self._hsm(request) if request.status in _FOR_THE_HSM else None
        if not covering:
            if hsm is None:
                return None
            reason = f"waiting for the HSM ({hsm}): the request is signed once it is back"
            return WaitingView(reason=reason, freezes=[], hsm=hsm)
        refs = [
            FreezeRef(
                id=row.id,
                **scope_of(
                    row, self._names.get(row.wallet_id) if row.wallet_id is not None else None
                ),
                reason=row.reason,
                since=_rfc3339(row.created_at),
            )
            for row in covering
        ]
        everything = any(row.wallet_id is None for row in covering)
        scope = describe_scope(None if everything else self._names.get(request.wallet_id))
        reason = f"{scope} is frozen: the request waits until every freeze covering it is lifted"
        return WaitingView(reason=reason, freezes=refs, hsm=hsm)


def waiting_for(session: Session, request: Request) -> WaitingView | None:
    return Waiting(session).of(request)


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
