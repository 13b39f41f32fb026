"""connected chains: a node per chain, broadcast and finality states, filled nonces and fees,
replacements of stuck transactions (a generation per nonce)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of custody.requests.states before and after this revision (see 0006).
BEFORE = {
    "pending_approval": ("approved", "rejected", "expired", "cancelled"),
    "approved": ("signing", "rejected", "pending_approval", "cancelled", "failed"),
    "signing": ("signed", "signing", "approved", "failed", "rejected", "pending_approval"),
}
AFTER = {
    **BEFORE,
    "signed": ("broadcast", "failed"),
    "broadcast": ("broadcast", "confirmed", "failed"),
}
STATUSES_BEFORE = (
    "pending_approval",
    "approved",
    "signing",
    "signed",
    "rejected",
    "expired",
    "cancelled",
    "failed",
)
STATUSES_AFTER = (
    "pending_approval",
    "approved",
    "signing",
    "signed",
    "broadcast",
    "confirmed",
    "rejected",
    "expired",
    "cancelled",
    "failed",
)
LIVE_BEFORE = "status IN ('pending_approval', 'approved', 'signing', 'signed')"
LIVE_AFTER = (
    "status IN ('pending_approval', 'approved', 'signing', 'signed', 'broadcast', 'confirmed') "
    "OR signed_at IS NOT NULL"
)
MESSAGE = "custody: request status transition not in the lifecycle table"
INDEX = "uq_requests_wallet_nonce_live"
NONCE = ["wallet_id", "evm_nonce"]


def _pairs(table: dict[str, tuple[str, ...]]) -> str:
    return ", ".join(f"('{a}', '{b}')" for a, targets in table.items() for b in targets)


def _in(statuses: tuple[str, ...]) -> str:
    return "status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")"


def _enforce(table: dict[str, tuple[str, ...]]) -> None:
    """The transition trigger (as 0013); on SQLite after the table was rebuilt, which drops it."""
    if op.get_bind().dialect.name == "postgresql":
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


def _statuses(
    statuses: tuple[str, ...], live: str, columns: list[str], *, add_columns: bool
) -> None:
    op.drop_index(INDEX, table_name="requests")
    with op.batch_alter_table("requests") as batch:
        batch.drop_constraint("status_known", type_="check")
        batch.create_check_constraint("status_known", _in(statuses))
        if add_columns:
            batch.add_column(sa.Column("evm_fill", sa.Text(), nullable=True))
            batch.add_column(sa.Column("replaces", sa.String(length=40), nullable=True))
            batch.add_column(
                sa.Column("nonce_generation", sa.Integer(), server_default="0", nullable=False)
            )
            batch.add_column(sa.Column("block_number", sa.BigInteger(), nullable=True))
            batch.add_column(sa.Column("block_hash", sa.String(length=66), nullable=True))
            batch.add_column(sa.Column("confirmations", sa.Integer(), nullable=True))
        else:
            batch.drop_column("confirmations")
            batch.drop_column("block_hash")
            batch.drop_column("block_number")
            batch.drop_column("evm_fill")
            batch.drop_column("nonce_generation")
            batch.drop_column("replaces")
    op.create_index(
        INDEX,
        "requests",
        columns,
        unique=True,
        sqlite_where=sa.text(live),
        postgresql_where=sa.text(live),
    )


def upgrade() -> None:
    with op.batch_alter_table("chains") as batch:
        batch.add_column(sa.Column("rpc_url", sa.String(length=500), nullable=True))
        batch.add_column(
            sa.Column("confirmations", sa.Integer(), server_default="1", nullable=False)
        )
        batch.add_column(sa.Column("max_fee_per_gas", sa.String(length=80), nullable=True))
    _statuses(STATUSES_AFTER, LIVE_AFTER, [*NONCE, "nonce_generation"], add_columns=True)
    _enforce(AFTER)


def downgrade() -> None:
    # Requests never vanish: with broadcast or confirmed ones stored, the constraint refuses.
    _statuses(STATUSES_BEFORE, LIVE_BEFORE, NONCE, add_columns=False)
    _enforce(BEFORE)
    with op.batch_alter_table("chains") as batch:
        batch.drop_column("max_fee_per_gas")
        batch.drop_column("confirmations")
        batch.drop_column("rpc_url")
