"""safe wallets: owners, threshold, executor and deployment; the executor nonce of a request

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01 19:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import custody.store.base
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "safe_wallets",
        sa.Column("wallet_id", sa.Integer(), sa.ForeignKey("wallets.id"), primary_key=True),
        sa.Column("owners", sa.Text(), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("executor_wallet_id", sa.Integer(), sa.ForeignKey("wallets.id"), nullable=False),
        sa.Column("salt_nonce", sa.String(80), nullable=False),
        sa.Column("factory", sa.String(42), nullable=False),
        sa.Column("singleton", sa.String(42), nullable=False),
        sa.Column("deployed_at", custody.store.base.UtcDateTime(timezone=True), nullable=True),
    )
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("executor_wallet_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("executor_nonce", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("executor_nonce")
        batch.drop_column("executor_wallet_id")
    op.drop_table("safe_wallets")
