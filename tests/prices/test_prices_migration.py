"""Migration 0009: prices keyed by symbol become prices of one asset on one chain.

An old price is kept only where its symbol and decimals name exactly one asset; the others are
dropped (USD rules deny until an operator sets them again, naming the chain).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from custody.store.base import UtcDateTime
from custody.store.database import normalise_url
from custody.store.migrate import alembic_config
from tests.support.postgres import PostgresServer

AS_OF = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
BSC_USDC = "0x8AC76a51cc950d9822D68b83fE1Ad97B32Cd580d"
WBTC = "0x2260FAC5E5542a773Aa44fBCfeDf7C193bc2C599"

CHAINS = sa.table(
    "chains",
    *(sa.column(c) for c in ("id", "name", "kind", "evm_chain_id", "native_asset")),
    sa.column("native_decimals"),
    sa.column("created_at", UtcDateTime()),
)
ASSETS = sa.table(
    "assets",
    *(sa.column(c) for c in ("chain_id", "symbol", "contract", "decimals", "standard")),
    sa.column("created_at", UtcDateTime()),
)
PRICES = sa.table(
    "reference_prices",
    *(sa.column(c) for c in ("asset", "usd_per_unit", "decimals")),
    sa.column("as_of", UtcDateTime()),
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'custody.db'}"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    url = server.create_database()
    try:
        yield url
    finally:
        server.drop_database(url)


def _seed_before(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for chain_id, name, evm_id, native in (
            (1, "ethereum", 1, "ETH"),
            (2, "sepolia", 11155111, "ETH"),
            (3, "bsc", 56, "BNB"),
        ):
            conn.execute(
                CHAINS.insert().values(
                    id=chain_id,
                    name=name,
                    kind="evm",
                    evm_chain_id=evm_id,
                    native_asset=native,
                    native_decimals=18,
                    created_at=AS_OF,
                )
            )
        for chain_id, symbol, contract, decimals in (
            (1, "USDC", USDC, 6),
            (3, "USDC", BSC_USDC, 18),
            (1, "WBTC", WBTC, 8),
        ):
            conn.execute(
                ASSETS.insert().values(
                    chain_id=chain_id,
                    symbol=symbol,
                    contract=contract,
                    decimals=decimals,
                    standard="erc20",
                    created_at=AS_OF,
                )
            )
        for symbol, usd, decimals in (
            ("ETH", "3000.00", 18),  # native on ethereum and on sepolia: ambiguous
            ("USDC", "1.00", 6),  # 6 decimals: only ethereum's USDC
            ("WBTC", "90000.00", 8),  # one place
            ("BNB", "600.00", 6),  # wrong decimals: names nothing
        ):
            conn.execute(
                PRICES.insert().values(
                    asset=symbol, usd_per_unit=usd, decimals=decimals, as_of=AS_OF
                )
            )


def test_only_prices_that_name_one_asset_survive(database_url: str) -> None:
    config = alembic_config(database_url)
    before = ScriptDirectory.from_config(config).get_revision("0009").down_revision
    assert isinstance(before, str)
    command.upgrade(config, before)
    engine = sa.create_engine(normalise_url(database_url))
    try:
        _seed_before(engine)
        command.upgrade(config, "0009")
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    sa.column("chain_id"),
                    sa.column("asset"),
                    sa.column("contract"),
                    sa.column("usd_per_unit"),
                    sa.column("as_of", UtcDateTime()),
                )
                .select_from(sa.table("reference_prices"))
                .order_by(sa.column("asset"))
            ).all()
        assert [tuple(row) for row in rows] == [
            (1, "USDC", USDC, "1.00", AS_OF),
            (1, "WBTC", WBTC, "90000.00", AS_OF),
        ]

        command.downgrade(config, before)
        with engine.connect() as conn:
            old = conn.execute(
                sa.select(sa.column("asset")).select_from(sa.table("reference_prices"))
            ).scalars()
            assert sorted(old) == ["USDC", "WBTC"]
    finally:
        engine.dispose()
