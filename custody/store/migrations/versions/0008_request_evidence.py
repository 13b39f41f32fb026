"""request evidence: the client's exact body and signed token, kept for the signer

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Requests stored before this revision have no evidence: the signer refuses those of
    # trading clients (fail closed) and says why; their clients submit them again.
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("client_body", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("client_token", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_column("client_token")
        batch_op.drop_column("client_body")
