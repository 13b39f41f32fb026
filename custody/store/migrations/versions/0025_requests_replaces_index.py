"""requests indexed by the request they replace

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-01 23:00:00.000000

Every view of a request (each GET and long poll) asks which request replaces it; without an index
that read scanned the whole requests table (`make bench`: most of the rows PostgreSQL read per
request).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Not in batch mode: on SQLite a batch may copy the table, and the copy would lose the
    # triggers that guard the requests' status.
    op.create_index(op.f("ix_requests_replaces"), "requests", ["replaces"])


def downgrade() -> None:
    op.drop_index(op.f("ix_requests_replaces"), table_name="requests")
