"""reference prices per chain and contract, not per symbol

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-01 06:30:00.000000

A price used to be keyed by symbol alone, so one price valued every asset of that symbol on
every chain (USDC on two chains: two contracts, perhaps other decimals). Each old price is kept
only where it names one asset unambiguously: its symbol known in exactly one place with the
decimals it was set with. The others are dropped; USD rules that need them deny (fail closed)
until an operator sets them again, naming the chain. The ledger keeps every old value.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import custody.store.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "reference_prices"


def upgrade() -> None:
    bind = op.get_bind()
    old = bind.execute(sa.text(f"SELECT asset, usd_per_unit, decimals, as_of FROM {TABLE}")).all()
    places = _places(bind)
    op.drop_table(TABLE)
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("contract", sa.String(length=42), nullable=True),
        sa.Column("usd_per_unit", sa.String(length=64), nullable=False),
        sa.Column("decimals", sa.Integer(), nullable=False),
        sa.Column("as_of", custody.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["chain_id"], ["chains.id"], name=op.f("fk_reference_prices_chain_id_chains")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_prices")),
        sa.UniqueConstraint("chain_id", "asset", name=op.f("uq_reference_prices_chain_id_asset")),
        sa.UniqueConstraint(
            "chain_id", "contract", name=op.f("uq_reference_prices_chain_id_contract")
        ),
    )
    insert = sa.text(
        f"INSERT INTO {TABLE} (chain_id, asset, contract, usd_per_unit, decimals, as_of) "
        "VALUES (:chain_id, :asset, :contract, :usd, :decimals, :as_of)"
    )
    for asset, usd, decimals, as_of in old:
        found = places.get((asset, decimals), [])
        if len(found) == 1:  # `as_of` is copied as stored: the same column type on both sides
            chain_id, contract = found[0]
            bind.execute(
                insert,
                {
                    "chain_id": chain_id,
                    "asset": asset,
                    "contract": contract,
                    "usd": usd,
                    "decimals": decimals,
                    "as_of": as_of,
                },
            )


def _places(bind: sa.Connection) -> dict[tuple[str, int], list[tuple[int, str | None]]]:
    """(symbol, decimals) -> every (chain id, contract or None for native) it names."""
    places: dict[tuple[str, int], list[tuple[int, str | None]]] = {}
    natives = bind.execute(sa.text("SELECT id, native_asset, native_decimals FROM chains"))
    for chain_id, symbol, decimals in natives:
        places.setdefault((symbol, decimals), []).append((chain_id, None))
    tokens = bind.execute(sa.text("SELECT chain_id, symbol, decimals, contract FROM assets"))
    for chain_id, symbol, decimals, contract in tokens:
        places.setdefault((symbol, decimals), []).append((chain_id, contract))
    return places


def downgrade() -> None:
    """Back to one price per symbol: a symbol priced on several chains is dropped, since the
    older code would apply one chain's price to all of them."""
    bind = op.get_bind()
    rows = bind.execute(sa.text(f"SELECT asset, usd_per_unit, decimals, as_of FROM {TABLE}")).all()
    op.drop_table(TABLE)
    op.create_table(
        TABLE,
        sa.Column("asset", sa.String(length=16), nullable=False),
        sa.Column("usd_per_unit", sa.String(length=64), nullable=False),
        sa.Column("decimals", sa.Integer(), nullable=False),
        sa.Column("as_of", custody.store.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("asset", name=op.f("pk_reference_prices")),
    )
    symbols = [row[0] for row in rows]
    for asset, usd, decimals, as_of in rows:
        if symbols.count(asset) == 1:
            bind.execute(
                sa.text(
                    f"INSERT INTO {TABLE} (asset, usd_per_unit, decimals, as_of) "
                    "VALUES (:asset, :usd, :decimals, :as_of)"
                ),
                {"asset": asset, "usd": usd, "decimals": decimals, "as_of": as_of},
            )
