"""Queries for chains, key records and wallets."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.store.models import Chain, Key, Wallet
from custody.wallets.errors import ChainNotFound, KeyRecordNotFound, WalletNotFound


def chain_by_name(session: Session, name: str) -> Chain:
    chain = session.execute(select(Chain).where(Chain.name == name)).scalar_one_or_none()
    if chain is None:
        raise ChainNotFound(f"unknown chain {name!r}")
    return chain


def chain_by_id(session: Session, chain_id: int) -> Chain:
    return session.execute(select(Chain).where(Chain.id == chain_id)).scalar_one()


def find_chain(session: Session, name: str) -> Chain | None:
    return session.execute(select(Chain).where(Chain.name == name)).scalar_one_or_none()


def chains(session: Session) -> list[Chain]:
    return list(session.execute(select(Chain).order_by(Chain.name)).scalars())


def key_by_label(session: Session, label: str) -> Key:
    key = session.execute(select(Key).where(Key.label == label)).scalar_one_or_none()
    if key is None:
        raise KeyRecordNotFound(f"unknown key {label!r} (see `custody keys list`)")
    return key


def key_by_id(session: Session, key_id: int) -> Key:
    return session.execute(select(Key).where(Key.id == key_id)).scalar_one()


def keys(session: Session) -> list[Key]:
    return list(session.execute(select(Key).order_by(Key.label)).scalars())


def wallet_by_name(session: Session, name: str) -> Wallet:
    wallet = find_wallet(session, name)
    if wallet is None:
        raise WalletNotFound(f"unknown wallet {name!r}")
    return wallet


def find_wallet(session: Session, name: str) -> Wallet | None:
    return session.execute(select(Wallet).where(Wallet.name == name)).scalar_one_or_none()


def wallet_by_id(session: Session, wallet_id: int) -> Wallet:
    return session.execute(select(Wallet).where(Wallet.id == wallet_id)).scalar_one()


def wallets(session: Session) -> list[tuple[Wallet, Chain, Key]]:
    rows = session.execute(
        select(Wallet, Chain, Key)
        .join(Chain, Chain.id == Wallet.chain_id)
        .join(Key, Key.id == Wallet.key_id)
        .order_by(Wallet.name)
    )
    return [(w, c, k) for w, c, k in rows]
