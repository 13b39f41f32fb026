"""key ceremonies: how each key may leave its token, and which backups hold it

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import custody.store.base

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every key made before this migration was generated CKA_EXTRACTABLE=false: none can ever
    # be backed up, and `custody keys list` says so.
    with op.batch_alter_table("keys") as batch:
        batch.add_column(
            sa.Column("backup", sa.String(length=16), server_default="none", nullable=False)
        )
        batch.create_check_constraint("backup_known", "backup IN ('none', 'trusted-wrap')")
    op.create_table(
        "key_backups",
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=False),
        sa.Column("created_at", custody.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["key_id"], ["keys.id"], name=op.f("fk_key_backups_key_id_keys")),
        sa.PrimaryKeyConstraint("key_id", "manifest_sha256", name=op.f("pk_key_backups")),
    )


def downgrade() -> None:
    op.drop_table("key_backups")
    with op.batch_alter_table("keys") as batch:
        batch.drop_constraint("backup_known", type_="check")
        batch.drop_column("backup")
