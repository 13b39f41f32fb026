"""freezes: stops on signing (whole installation or one wallet) and their governed lifts

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import custody.store.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("state = 'pending'")


def upgrade() -> None:
    # Nothing is frozen after the upgrade: signing goes on as before until someone freezes it.
    op.create_table(
        "freezes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("wallet_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("created_at", custody.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("lifted_at", custody.store.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.String(length=100), nullable=True),
        sa.Column("lift_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "(lifted_at IS NULL) = (lifted_by IS NULL) AND (lifted_at IS NULL) = (lift_reason IS NULL)",
            name=op.f("ck_freezes_lift_complete"),
        ),
        sa.CheckConstraint("length(reason) > 0", name=op.f("ck_freezes_reason_given")),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.id"], name=op.f("fk_freezes_wallet_id_wallets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_freezes")),
    )
    with op.batch_alter_table("freezes") as batch:
        batch.create_index(batch.f("ix_freezes_wallet_id"), ["wallet_id"], unique=False)

    op.create_table(
        "unfreezes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("freeze_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("requested_at", custody.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("required_approvals", sa.Text(), nullable=False),
        sa.Column("decided_at", custody.store.base.UtcDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'applied', 'rejected', 'superseded')",
            name=op.f("ck_unfreezes_state_known"),
        ),
        sa.ForeignKeyConstraint(
            ["freeze_id"], ["freezes.id"], name=op.f("fk_unfreezes_freeze_id_freezes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unfreezes")),
    )
    with op.batch_alter_table("unfreezes") as batch:
        batch.create_index(batch.f("ix_unfreezes_freeze_id"), ["freeze_id"], unique=False)
        # One pending lift per freeze: approvals never split between two of them.
        batch.create_index(
            "uq_unfreezes_freeze_id_pending",
            ["freeze_id"],
            unique=True,
            sqlite_where=PENDING,
            postgresql_where=PENDING,
        )

    op.create_table(
        "unfreeze_approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unfreeze_id", sa.Integer(), nullable=False),
        sa.Column("approver_id", sa.String(length=40), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("statement", sa.LargeBinary(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("created_at", custody.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "decision IN ('approve', 'reject')", name=op.f("ck_unfreeze_approvals_decision_known")
        ),
        sa.ForeignKeyConstraint(
            ["approver_id"],
            ["approvers.id"],
            name=op.f("fk_unfreeze_approvals_approver_id_approvers"),
        ),
        sa.ForeignKeyConstraint(
            ["unfreeze_id"],
            ["unfreezes.id"],
            name=op.f("fk_unfreeze_approvals_unfreeze_id_unfreezes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unfreeze_approvals")),
        sa.UniqueConstraint(
            "unfreeze_id",
            "approver_id",
            name=op.f("uq_unfreeze_approvals_unfreeze_id_approver_id"),
        ),
    )
    with op.batch_alter_table("unfreeze_approvals") as batch:
        batch.create_index(
            batch.f("ix_unfreeze_approvals_unfreeze_id"), ["unfreeze_id"], unique=False
        )


def downgrade() -> None:
    # Dropping a table drops its indexes on both SQLite and PostgreSQL.
    op.drop_table("unfreeze_approvals")
    op.drop_table("unfreezes")
    op.drop_table("freezes")
