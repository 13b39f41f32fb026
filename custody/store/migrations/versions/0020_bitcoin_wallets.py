"""bitcoin: chains without an EVM chain id, wallet descriptors, signed PSBT results

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01 16:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("chains") as batch:
        batch.alter_column("evm_chain_id", existing_type=sa.BigInteger(), nullable=True)
    with op.batch_alter_table("wallets") as batch:
        batch.add_column(sa.Column("descriptor", sa.Text(), nullable=True))
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("result_psbt", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("result_psbt")
    with op.batch_alter_table("wallets") as batch:
        batch.drop_column("descriptor")
    with op.batch_alter_table("chains") as batch:
        batch.alter_column("evm_chain_id", existing_type=sa.BigInteger(), nullable=False)
