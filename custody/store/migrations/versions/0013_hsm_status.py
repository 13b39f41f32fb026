"""HSM status and login holds: signer processes report the HSM; a refused PIN holds logins;
signing -> approved (an HSM that cannot sign now sends a request back to wait) in the lifecycle
table the database enforces

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import custody.store.base

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of custody.requests.states.TRANSITIONS before and after this revision (see 0006).
BEFORE = {
    "pending_approval": ("approved", "rejected", "expired", "cancelled"),
    "approved": ("signing", "rejected", "pending_approval", "cancelled", "failed"),
    "signing": ("signed", "signing", "failed", "rejected", "pending_approval"),
}
AFTER = {
    **BEFORE,
    "signing": ("signed", "signing", "approved", "failed", "rejected", "pending_approval"),
}
MESSAGE = "custody: request status transition not in the lifecycle table"


def _pairs(table: dict[str, tuple[str, ...]]) -> str:
    return ", ".join(f"('{a}', '{b}')" for a, targets in table.items() for b in targets)


def _enforce(table: dict[str, tuple[str, ...]]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        # The trigger calls the function by name: replacing the function is enough.
        op.execute(
            "CREATE OR REPLACE FUNCTION custody_request_transition() RETURNS trigger "
            "LANGUAGE plpgsql AS $$\n"
            "BEGIN\n"
            f"  IF (OLD.status, NEW.status) NOT IN ({_pairs(table)}) THEN\n"
            f"    RAISE EXCEPTION '{MESSAGE} (% -> %)', OLD.status, NEW.status;\n"
            "  END IF;\n"
            "  RETURN NEW;\n"
            "END $$"
        )
        return
    op.execute("DROP TRIGGER IF EXISTS requests_status_transition")
    op.execute(
        "CREATE TRIGGER requests_status_transition BEFORE UPDATE OF status ON requests "
        f"FOR EACH ROW WHEN OLD.status IS NOT NEW.status AND (OLD.status, NEW.status) "
        f"NOT IN (VALUES {_pairs(table)}) "
        f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
    )


def upgrade() -> None:
    op.create_table(
        "hsm_status",
        sa.Column("process", sa.String(length=200), nullable=False),
        sa.Column("token_label", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("since", custody.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("checked_at", custody.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("process"),
    )
    op.create_table(
        "hsm_login_holds",
        sa.Column("token_label", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("held_by", sa.String(length=200), nullable=False),
        sa.Column("held_at", custody.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_label"),
    )
    _enforce(AFTER)


def downgrade() -> None:
    _enforce(BEFORE)
    op.drop_table("hsm_login_holds")
    op.drop_table("hsm_status")
