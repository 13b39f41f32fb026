"""configuration approvals: the governance quorum's device-key decisions on configuration seals

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-01 22:00:00.000000

Under `governance`, a configuration seal made by the root key alone no longer widens what the
signer trusts: the quorum of the configuration in effect before it signs the seal's statement.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import custody.store.base
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "configuration_approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("approver_id", sa.String(length=40), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("statement", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("created_at", custody.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "decision IN ('approve', 'reject')",
            name=op.f("ck_configuration_approvals_decision_known"),
        ),
        sa.ForeignKeyConstraint(
            ["approver_id"],
            ["approvers.id"],
            name=op.f("fk_configuration_approvals_approver_id_approvers"),
        ),
        sa.ForeignKeyConstraint(
            ["epoch"],
            ["configuration_seals.epoch"],
            name=op.f("fk_configuration_approvals_epoch_configuration_seals"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_configuration_approvals")),
        sa.UniqueConstraint(
            "epoch", "approver_id", name=op.f("uq_configuration_approvals_epoch_approver_id")
        ),
    )
    op.create_index(
        op.f("ix_configuration_approvals_epoch"), "configuration_approvals", ["epoch"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_configuration_approvals_epoch"), table_name="configuration_approvals")
    op.drop_table("configuration_approvals")
