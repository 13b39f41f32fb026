"""request lifecycle: signed_at, and the transition table enforced by the database

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 04:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import custody.store.base

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A frozen copy of custody.requests.states.TRANSITIONS as of this revision: a migration must
# create the same database whenever it runs. A later change to the table comes with a later
# migration; tests/requests/test_lifecycle_database.py fails until it does.
TRANSITIONS = {
    "pending_approval": ("approved", "rejected", "expired", "cancelled"),
    "approved": ("signing", "rejected", "pending_approval", "cancelled", "failed"),
    "signing": ("signed", "signing", "failed", "rejected", "pending_approval"),
}
MESSAGE = "custody: request status transition not in the lifecycle table"


def _pairs() -> str:
    return ", ".join(f"('{a}', '{b}')" for a, targets in TRANSITIONS.items() for b in targets)


def upgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("signed_at", custody.store.base.UtcDateTime(timezone=True), nullable=True)
        )
    # Until now a signed request never changed again, so its updated_at is when it was signed.
    op.execute("UPDATE requests SET signed_at = updated_at WHERE status = 'signed'")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION custody_request_transition() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            "BEGIN\n"
            f"  IF (OLD.status, NEW.status) NOT IN ({_pairs()}) THEN\n"
            f"    RAISE EXCEPTION '{MESSAGE} (% -> %)', OLD.status, NEW.status;\n"
            "  END IF;\n"
            "  RETURN NEW;\n"
            "END $$"
        )
        op.execute(
            "CREATE TRIGGER requests_status_transition BEFORE UPDATE OF status ON requests "
            "FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) "
            "EXECUTE FUNCTION custody_request_transition()"
        )
    else:
        op.execute(
            "CREATE TRIGGER requests_status_transition BEFORE UPDATE OF status ON requests "
            f"FOR EACH ROW WHEN OLD.status IS NOT NEW.status AND (OLD.status, NEW.status) "
            f"NOT IN (VALUES {_pairs()}) "
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        )


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER IF EXISTS requests_status_transition"
        + (" ON requests" if op.get_bind().dialect.name == "postgresql" else "")
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS custody_request_transition()")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_column("signed_at")
