"""ledger key rotation: the checkpoint keys and the tree sizes each signs, append-only

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import custody.store.base

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "ledger_keys"


def upgrade() -> None:
    # Empty for an existing installation: CUSTODY_LEDGER_KEY_LABEL stays its only key until the
    # first rotation records it as generation 0.
    op.create_table(
        TABLE,
        sa.Column("generation", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("first_size", sa.BigInteger(), nullable=False),
        sa.Column("ledger_index", sa.BigInteger(), nullable=True),
        sa.Column("created_at", custody.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("generation", name=op.f("pk_ledger_keys")),
        sa.UniqueConstraint("first_size", name=op.f("uq_ledger_keys_first_size")),
        sa.UniqueConstraint("label", name=op.f("uq_ledger_keys_label")),
    )
    # Which key signs which sizes is part of the evidence: refused like the ledger's own tables
    # (custody_append_only() is from 0002).
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION custody_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION custody_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {TABLE}_no_{action.lower()} BEFORE {action} ON {TABLE} "
                f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: {action} refused'); END"
            )


def downgrade() -> None:
    # Dropping the table drops its triggers on both SQLite and PostgreSQL.
    op.drop_table(TABLE)
