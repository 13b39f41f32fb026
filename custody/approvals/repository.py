"""Queries over approvers, their groups and approvals: the only SQL of the approvals flow."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from custody.store.models import (
    Approval,
    Approver,
    ApproverGroup,
    CeremonyApproval,
    CeremonyProposal,
    WebauthnCredential,
)


def approver_named(session: Session, name: str) -> Approver | None:
    return session.execute(select(Approver).where(Approver.name == name)).scalar_one_or_none()


def membership(session: Session, approver_ids: Iterable[str]) -> dict[str, set[str]]:
    """approver id -> the groups they are in now."""
    found: dict[str, set[str]] = {}
    for approver_id, group in session.execute(
        select(ApproverGroup.approver_id, ApproverGroup.group).where(
            ApproverGroup.approver_id.in_(list(approver_ids))
        )
    ):
        found.setdefault(approver_id, set()).add(group)
    return found


def _enabled_approvals(request_id: str) -> tuple[ColumnElement[bool], ...]:
    """Approvals (not rejections) of this request by approvers still enabled."""
    return (
        Approval.request_id == request_id,
        Approval.decision == "approve",
        Approver.disabled_at.is_(None),
    )


def enabled_approvals(session: Session, request_id: str) -> list[tuple[str, str]]:
    """(approver id, name) of each approval of this request by an approver still enabled, in the
    order they were given."""
    rows = session.execute(
        select(Approval.approver_id, Approver.name)
        .join(Approver, Approver.id == Approval.approver_id)
        .where(*_enabled_approvals(request_id))
        .order_by(Approval.id)
    )
    return [(approver_id, name) for approver_id, name in rows]


def enabled_approvals_with_approvers(
    session: Session, request_id: str
) -> list[tuple[Approval, Approver]]:
    """The same approvals as whole rows, with their approvers: statement, method and evidence,
    for the signer to verify."""
    rows = session.execute(
        select(Approval, Approver)
        .join(Approver, Approver.id == Approval.approver_id)
        .where(*_enabled_approvals(request_id))
        .order_by(Approval.id)
    ).all()
    return [(approval, approver) for approval, approver in rows]


def rejections_with_approvers(session: Session, request_id: str) -> list[tuple[Approval, Approver]]:
    """Every rejection of this request with its approver, enabled or not: a rejection given
    stays given when its approver is disabled later."""
    rows = session.execute(
        select(Approval, Approver)
        .join(Approver, Approver.id == Approval.approver_id)
        .where(Approval.request_id == request_id, Approval.decision == "reject")
        .order_by(Approval.id)
    ).all()
    return [(approval, approver) for approval, approver in rows]


def passkey(session: Session, credential_id: str) -> WebauthnCredential | None:
    return session.get(WebauthnCredential, credential_id)


def decisions_with_names(session: Session, request_id: str) -> list[tuple[Approval, str]]:
    rows = session.execute(
        select(Approval, Approver.name)
        .join(Approver, Approver.id == Approval.approver_id)
        .where(Approval.request_id == request_id)
        .order_by(Approval.id)
    ).all()
    return [(approval, name) for approval, name in rows]


def ceremony_proposals_for(
    session: Session, kind: str, subject_sha256: str
) -> list[CeremonyProposal]:
    """Pending proposals of exactly this ceremony, oldest first."""
    return list(
        session.execute(
            select(CeremonyProposal)
            .where(
                CeremonyProposal.kind == kind,
                CeremonyProposal.subject_sha256 == subject_sha256,
                CeremonyProposal.state == "pending",
            )
            .order_by(CeremonyProposal.id)
        ).scalars()
    )


def ceremony_proposal(
    session: Session, proposal_id: int, *, for_update: bool
) -> CeremonyProposal | None:
    query = select(CeremonyProposal).where(CeremonyProposal.id == proposal_id)
    return session.execute(query.with_for_update() if for_update else query).scalar_one_or_none()


def recent_ceremony_proposals(session: Session, limit: int) -> list[CeremonyProposal]:
    query = select(CeremonyProposal).order_by(CeremonyProposal.id.desc()).limit(limit)
    return list(session.execute(query).scalars())


def ceremony_decisions(
    session: Session, proposal_id: int
) -> list[tuple[CeremonyApproval, Approver]]:
    """Every decision on a proposal with its approver, in the order they came."""
    rows = session.execute(
        select(CeremonyApproval, Approver)
        .join(Approver, Approver.id == CeremonyApproval.approver_id)
        .where(CeremonyApproval.proposal_id == proposal_id)
        .order_by(CeremonyApproval.id)
    )
    return [(approval, approver) for approval, approver in rows]
