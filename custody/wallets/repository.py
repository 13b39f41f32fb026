"""Queries for wallets."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import bindparam, not_, or_, select
from sqlalchemy.orm import Session

from custody.store.models import Chain, Key, SafeWallet, Wallet
from custody.wallets.errors import WalletNotFound


def wallet_by_name(session: Session, name: str) -> Wallet:
    wallet = find_wallet(session, name)
    if wallet is None:
        raise WalletNotFound(f"unknown wallet {name!r}")
    return wallet


# Built once: building a statement and its cache key cost as much as running it, and the
# signer and intake look rows up by id several times per request.
_WALLET_NAMED = select(Wallet).where(Wallet.name == bindparam("name"))
_WALLET_BY_ID = select(Wallet).where(Wallet.id == bindparam("id"))


def find_wallet(session: Session, name: str) -> Wallet | None:
    return session.execute(_WALLET_NAMED, {"name": name}).scalar_one_or_none()


def wallet_by_id(session: Session, wallet_id: int) -> Wallet:
    return session.execute(_WALLET_BY_ID, {"id": wallet_id}).scalar_one()


def wallet_ids_on_tokens(session: Session, token_labels: Collection[str]) -> set[int]:
    """The wallets whose one key is on one of these tokens (`keys.token`). Not multisig
    (P2WSH, Safe) wallets: their owner keys may be on several tokens, and whether one request of
    theirs waits depends on which of its keys are reachable (custody.signing.pipeline)."""
    if not token_labels:
        return set()
    query = (
        select(Wallet.id)
        .join(Key, Key.id == Wallet.key_id)
        .where(Key.token.in_(token_labels))
        .where(or_(Wallet.descriptor.is_(None), not_(Wallet.descriptor.startswith("wsh("))))
        # nor Safe wallets, for the same reason
        .where(Wallet.id.not_in(select(SafeWallet.wallet_id)))
    )
    return set(session.execute(query).scalars())


def wallets(session: Session) -> list[tuple[Wallet, Chain, Key]]:
    rows = session.execute(
        select(Wallet, Chain, Key)
        .join(Chain, Chain.id == Wallet.chain_id)
        .join(Key, Key.id == Wallet.key_id)
        .order_by(Wallet.name)
    )
    return [(w, c, k) for w, c, k in rows]


def safe_wallet_ids(session: Session) -> set[int]:
    return set(session.execute(select(SafeWallet.wallet_id)).scalars())


def locked_safe(session: Session, wallet_id: int) -> SafeWallet:
    return session.execute(
        select(SafeWallet).where(SafeWallet.wallet_id == wallet_id).with_for_update()
    ).scalar_one()
