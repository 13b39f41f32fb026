"""The token registry: which contract on which chain is which asset, with how many decimals.

Intake reads it to judge an ERC-20 transfer as a withdrawal of that asset (so limits and
allowlists written for the asset apply to it); a contract that is not registered is judged as
a plain contract call. Each registration is written with its ledger entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.catalog.chains import chain_by_name
from custody.chains import EvmAddress, InvalidPayload
from custody.errors import AlreadyExists
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.names import InvalidName
from custody.store.base import utcnow
from custody.store.models import Asset, Chain

SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{1,16}$")
MAX_DECIMALS = 36


@dataclass(frozen=True)
class AssetRow:
    symbol: str
    chain: str
    contract: str
    decimals: int
    standard: str

    def as_dict(self) -> dict[str, str | int]:
        return {
            "symbol": self.symbol,
            "chain": self.chain,
            "contract": self.contract,
            "decimals": self.decimals,
            "standard": self.standard,
        }


def validate_symbol(symbol: str) -> str:
    if not SYMBOL_PATTERN.fullmatch(symbol):
        raise InvalidName(f"asset symbol {symbol!r} must be 1 to 16 upper-case letters or digits")
    return symbol


def validate_decimals(decimals: int) -> int:
    if not 0 <= decimals <= MAX_DECIMALS:
        raise InvalidName(f"decimals must be between 0 and {MAX_DECIMALS}, got {decimals}")
    return decimals


def checked_address(text: str, what: str) -> str:
    """The EIP-55 form; a mixed-case address with a wrong checksum is refused, never fixed."""
    try:
        return EvmAddress.parse(text, what=what).checksummed
    except InvalidPayload as exc:
        raise InvalidName(exc.message) from None


def add_asset(
    session: Session, *, symbol: str, chain_name: str, contract: str, decimals: int, actor: str
) -> AssetRow:
    validate_symbol(symbol)
    validate_decimals(decimals)
    address = checked_address(contract, "contract")
    chain = chain_by_name(session, chain_name)
    if symbol == chain.native_asset:
        # One symbol, one meaning per chain: limits on ETH must not also count a token named ETH.
        raise AlreadyExists(f"{symbol} is the native asset of chain {chain.name}")
    for existing in session.execute(select(Asset).where(Asset.chain_id == chain.id)).scalars():
        if existing.symbol == symbol:
            raise AlreadyExists(f"asset {symbol} is already registered on chain {chain.name}")
        if existing.contract.lower() == address.lower():
            raise AlreadyExists(
                f"contract {address} is already registered on chain {chain.name} "
                f"as {existing.symbol}"
            )
    asset = Asset(
        symbol=symbol,
        chain_id=chain.id,
        contract=address,
        decimals=decimals,
        standard="erc20",
        created_at=utcnow(),
    )
    session.add(asset)
    session.flush()
    row = AssetRow(symbol, chain.name, address, decimals, "erc20")
    ledger.append(session, EventKind.ASSET_ADDED, actor, dict(row.as_dict()))
    return row


def list_assets(session: Session) -> list[AssetRow]:
    rows = session.execute(
        select(Asset, Chain)
        .join(Chain, Chain.id == Asset.chain_id)
        .order_by(Chain.name, Asset.symbol)
    )
    return [AssetRow(a.symbol, c.name, a.contract, a.decimals, a.standard) for a, c in rows]


def asset_by_contract(session: Session, chain_id: int, contract: str) -> Asset | None:
    """The registered token at `contract` on the chain, if any (stored and asked checksummed)."""
    address = EvmAddress.parse(contract, what="contract").checksummed
    return session.execute(
        select(Asset).where(Asset.chain_id == chain_id, Asset.contract == address)
    ).scalar_one_or_none()


def asset_by_symbol(session: Session, chain_id: int, symbol: str) -> Asset | None:
    return session.execute(
        select(Asset).where(Asset.chain_id == chain_id, Asset.symbol == symbol)
    ).scalar_one_or_none()


def decimals_on_chain(session: Session, chain: Chain, symbol: str) -> int | None:
    """The decimals of `symbol` on `chain` (native asset or registered token), None if unknown."""
    if symbol == chain.native_asset:
        return chain.native_decimals
    asset = asset_by_symbol(session, chain.id, symbol)
    return None if asset is None else asset.decimals
