"""several HSM tokens: signer reports per process and token

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 10:00:00.000000

The reports are refreshed every few seconds by the signers, so the table is made anew rather
than altered: nothing in it outlives a signer's next look at the HSM.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import custody.store.base

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _create(*primary_key: str) -> None:
    op.create_table(
        "hsm_status",
        sa.Column("process", sa.String(length=200), nullable=False),
        sa.Column("token_label", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("since", custody.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("checked_at", custody.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*primary_key, name=op.f("pk_hsm_status")),
    )


def upgrade() -> None:
    op.drop_table("hsm_status")
    _create("process", "token_label")


def downgrade() -> None:
    op.drop_table("hsm_status")
    _create("process")
