"""Where a symbol names an asset: the native asset of some chains, tokens on others."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.store.models import Asset, Chain


@dataclass(frozen=True)
class Place:
    chain: Chain
    contract: str | None
    """None: the chain's native asset."""
    decimals: int

    def describe(self) -> str:
        what = "native" if self.contract is None else self.contract
        return f"{self.chain.name}: {what}, {self.decimals} decimals"


def places_of(session: Session, symbol: str) -> list[Place]:
    """Every asset `symbol` names, by chain name."""
    natives = session.execute(select(Chain).where(Chain.native_asset == symbol)).scalars()
    tokens = session.execute(
        select(Asset, Chain).join(Chain, Chain.id == Asset.chain_id).where(Asset.symbol == symbol)
    )
    found = [Place(chain, None, chain.native_decimals) for chain in natives]
    found += [Place(chain, asset.contract, asset.decimals) for asset, chain in tokens]
    return sorted(found, key=lambda place: place.chain.name)
