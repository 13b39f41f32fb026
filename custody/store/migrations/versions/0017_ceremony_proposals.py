"""key ceremonies under governance: proposals and their device-key approvals

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 11:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import custody.store.base

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ceremony_proposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("subject_sha256", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("required_approvals", sa.Text(), nullable=False),
        sa.Column("proposed_by", sa.String(length=100), nullable=False),
        sa.Column("proposed_at", custody.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", custody.store.base.UtcDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'rejected', 'used')",
            name=op.f("ck_ceremony_proposals_state_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ceremony_proposals")),
    )
    op.create_index(
        op.f("ix_ceremony_proposals_subject_sha256"),
        "ceremony_proposals",
        ["subject_sha256"],
        unique=False,
    )
    op.create_table(
        "ceremony_approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("approver_id", sa.String(length=40), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("statement", sa.LargeBinary(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("created_at", custody.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "decision IN ('approve', 'reject')",
            name=op.f("ck_ceremony_approvals_decision_known"),
        ),
        sa.ForeignKeyConstraint(
            ["approver_id"],
            ["approvers.id"],
            name=op.f("fk_ceremony_approvals_approver_id_approvers"),
        ),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["ceremony_proposals.id"],
            name=op.f("fk_ceremony_approvals_proposal_id_ceremony_proposals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ceremony_approvals")),
        sa.UniqueConstraint(
            "proposal_id", "approver_id", name=op.f("uq_ceremony_approvals_proposal_id_approver_id")
        ),
    )
    op.create_index(
        op.f("ix_ceremony_approvals_proposal_id"),
        "ceremony_approvals",
        ["proposal_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_ceremony_approvals_proposal_id"), table_name="ceremony_approvals")
    op.drop_table("ceremony_approvals")
    op.drop_index(op.f("ix_ceremony_proposals_subject_sha256"), table_name="ceremony_proposals")
    op.drop_table("ceremony_proposals")
