"""ledger entries indexed by kind and time, for the signer's limit re-check

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-01 19:20:00.000000

The signer counts the requests a limit covers from their `request.signed` entries within the
limit's window (the ledger is append-only; `requests.status` and `signed_at` are rows anyone with
database access can edit), on every claim: an index on (kind, time) keeps that read to the window.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Not in batch mode: on SQLite a batch may copy the table, and the copy would lose the
    # triggers that refuse UPDATE and DELETE on the ledger.
    op.create_index("ix_ledger_entries_kind_time", "ledger_entries", ["kind", "time"])


def downgrade() -> None:
    op.drop_index("ix_ledger_entries_kind_time", table_name="ledger_entries")
