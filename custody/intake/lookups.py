"""The catalog as the decoders see it, and a record of every answer it gave them.

Decoding is the CPU-heavy part of intake (strict JSON, calldata, EIP-712 hashing), so it runs in
a read transaction, before the write transaction that stores the request: on SQLite that one
holds the database's only write lock, and every other writer waits while it is open. Decoders
therefore get no Session, only `Lookups`: each wallet, chain, asset or venue they ask for, and
what the answer was (every column of the row, or that there was none), is recorded. The write
transaction asks the same questions again (`still_holds`), a few indexed reads, and stores the
request only if every answer is the same, so a decode is never stored against a catalog that
changed under it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.orm import Session

from custody.catalog.assets import asset_by_contract
from custody.catalog.chains import chain_by_id
from custody.catalog.venues import find_venue
from custody.keys.repository import find_key, find_key_by_public_key
from custody.store.base import Base
from custody.store.models import Asset, Chain, Key, SafeWallet, Venue, Wallet
from custody.wallets.errors import WalletNotFound
from custody.wallets.repository import find_wallet


def _safe(session: Session, wallet_id: int) -> SafeWallet | None:
    return session.get(SafeWallet, wallet_id)


def _wallet_by_id(session: Session, wallet_id: int) -> Wallet | None:
    return session.get(Wallet, wallet_id)


def _key_by_id(session: Session, key_id: int) -> Key | None:
    return session.get(Key, key_id)


Snapshot = tuple[tuple[str, Any], ...] | None

# Each question a decoder may ask, by name: how to ask it of a session.
_QUESTIONS: dict[str, Callable[..., Base | None]] = {
    "wallet": find_wallet,
    "chain": chain_by_id,
    "asset_by_contract": asset_by_contract,
    "venue": find_venue,
    "key_by_public_key": find_key_by_public_key,
    "safe": _safe,
    "key": find_key,
    "wallet_by_id": _wallet_by_id,
    "key_by_id": _key_by_id,
}


@dataclass(frozen=True)
class Read:
    question: str
    args: tuple[Any, ...]
    answer: Snapshot


def snapshot(row: Base | None) -> Snapshot:
    """Every column of a row, by name; None for no row."""
    if row is None:
        return None
    return tuple((attr.key, getattr(row, attr.key)) for attr in inspect(row).mapper.column_attrs)


class Lookups:
    """Catalog reads through one session, each recorded with its answer."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.reads: list[Read] = []

    def wallet(self, name: str) -> Wallet:
        wallet = self._ask("wallet", name)
        if wallet is None:
            raise WalletNotFound(f"unknown wallet {name!r}")
        assert isinstance(wallet, Wallet)
        return wallet

    def chain(self, chain_id: int) -> Chain:
        chain = self._ask("chain", chain_id)
        assert isinstance(chain, Chain)
        return chain

    def asset_by_contract(self, chain_id: int, contract: str) -> Asset | None:
        asset = self._ask("asset_by_contract", chain_id, contract)
        assert asset is None or isinstance(asset, Asset)
        return asset

    def venue(self, name: str) -> Venue | None:
        venue = self._ask("venue", name)
        assert venue is None or isinstance(venue, Venue)
        return venue

    def key_by_public_key(self, public_key_hex: str) -> Key | None:
        """Which of custody's keys, if any, is a Bitcoin wallet's owner key."""
        key = self._ask("key_by_public_key", public_key_hex)
        assert key is None or isinstance(key, Key)
        return key

    def safe(self, wallet_id: int) -> SafeWallet | None:
        """The wallet's Safe configuration, if it is a Safe wallet."""
        row = self._ask("safe", wallet_id)
        assert row is None or isinstance(row, SafeWallet)
        return row

    def key(self, label: str) -> Key:
        key = self._ask("key", label)
        if key is None:
            raise WalletNotFound(f"key {label!r} of a Safe wallet no longer exists")
        assert isinstance(key, Key)
        return key

    def key_by_id(self, key_id: int) -> Key:
        key = self._ask("key_by_id", key_id)
        assert isinstance(key, Key)
        return key

    def wallet_by_id(self, wallet_id: int) -> Wallet:
        wallet = self._ask("wallet_by_id", wallet_id)
        assert isinstance(wallet, Wallet)
        return wallet

    def _ask(self, question: str, *args: Any) -> Base | None:
        row = _QUESTIONS[question](self._session, *args)
        self.reads.append(Read(question, args, snapshot(row)))
        return row


def still_holds(session: Session, reads: list[Read]) -> bool:
    """Whether every recorded question has the same answer in `session` now."""
    return all(
        snapshot(_QUESTIONS[read.question](session, *read.args)) == read.answer for read in reads
    )
