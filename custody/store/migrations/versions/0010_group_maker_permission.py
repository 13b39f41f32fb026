"""approver groups: the maker permission (who may start withdrawals in the approver app)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Off for every existing group: after the upgrade nobody starts withdrawals in the app
    # until an operator grants it (the ledger records who did).
    with op.batch_alter_table("approver_group_settings") as batch:
        batch.add_column(sa.Column("maker", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("approver_group_settings") as batch:
        batch.drop_column("maker")
