"""Queries over approvers, their groups and approvals: the only SQL of the approvals flow."""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from custody.store.models import (
    Approval,
    Approver,
    ApproverGroup,
    CeremonyApproval,
    CeremonyProposal,
    ConfigurationApproval,
    ConfigurationSeal,
    PolicyApproval,
    PolicyVersion,
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


# --- configuration governance (custody.approvals.configuration_approvals) ---------------------

Signed = tuple[str, str, str]
"""(approver id, decision, base64 signature) of one stored decision."""


def policy_text(session: Session, version_id: int) -> tuple[str, str] | None:
    """The stored text and source name of a policy version."""
    row = session.execute(
        select(PolicyVersion.source_text, PolicyVersion.source_name).where(
            PolicyVersion.id == version_id
        )
    ).first()
    return None if row is None else (row.source_text, row.source_name)


def seal_signature(session: Session, epoch: int) -> bytes | None:
    return session.execute(
        select(ConfigurationSeal.signature).where(ConfigurationSeal.epoch == epoch)
    ).scalar_one_or_none()


def seals_after(session: Session, epoch: int) -> Iterable[ConfigurationSeal]:
    """Every seal newer than `epoch`, oldest first, with its document."""
    return session.execute(
        select(ConfigurationSeal)
        .where(ConfigurationSeal.epoch > epoch)
        .order_by(ConfigurationSeal.epoch)
    ).scalars()


def configuration_decisions_marker(session: Session, after: int) -> tuple[int, int]:
    """How many decisions there are on seals newer than `after`, and the newest one's id: any
    new decision changes it."""
    count, newest = session.execute(
        select(func.count(ConfigurationApproval.id), func.max(ConfigurationApproval.id)).where(
            ConfigurationApproval.epoch > after
        )
    ).one()
    return int(count), int(newest or 0)


def configuration_decisions(session: Session, epoch: int) -> list[Signed]:
    rows = session.execute(
        select(
            ConfigurationApproval.approver_id,
            ConfigurationApproval.decision,
            ConfigurationApproval.signature,
        )
        .where(ConfigurationApproval.epoch == epoch)
        .order_by(ConfigurationApproval.id)
    ).all()
    return [(r.approver_id, r.decision, r.signature) for r in rows]


def policy_decisions(session: Session, version_id: int) -> list[Signed]:
    rows = session.execute(
        select(PolicyApproval.approver_id, PolicyApproval.decision, PolicyApproval.evidence)
        .where(PolicyApproval.version_id == version_id)
        .order_by(PolicyApproval.id)
    ).all()
    return [(r.approver_id, r.decision, _signature(r.evidence)) for r in rows]


def _signature(evidence: str) -> str:
    try:
        found = json.loads(evidence).get("signature")
    except (ValueError, AttributeError):
        return ""
    return found if isinstance(found, str) else ""
