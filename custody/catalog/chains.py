"""Chains custody knows: built in or added by an operator, each addition ledgered."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.chains import BUILTIN_CHAINS
from custody.errors import AlreadyExists, NotFound
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.names import CHAIN_NAME_PATTERN, InvalidName, validate_name
from custody.store.base import utcnow
from custody.store.models import Chain


class ChainNotFound(NotFound):
    slug = "chain-not-found"


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


def add_chain(
    session: Session,
    *,
    name: str,
    evm_chain_id: int,
    actor: str,
    native_asset: str = "ETH",
    native_decimals: int = 18,
) -> Chain:
    validate_name("chain", name, CHAIN_NAME_PATTERN)
    if not 0 < evm_chain_id < 2**63:
        raise InvalidName(f"EVM chain id must be a positive integer below 2^63, got {evm_chain_id}")
    if find_chain(session, name) is not None:
        raise AlreadyExists(f"chain {name!r} already exists")
    for existing in chains(session):
        if existing.evm_chain_id == evm_chain_id:
            raise AlreadyExists(f"EVM chain id {evm_chain_id} is already chain {existing.name!r}")
    chain = Chain(
        name=name,
        kind="evm",
        evm_chain_id=evm_chain_id,
        native_asset=native_asset,
        native_decimals=native_decimals,
        created_at=utcnow(),
    )
    session.add(chain)
    session.flush()
    ledger.append(
        session,
        EventKind.CHAIN_ADDED,
        actor,
        {
            "name": name,
            "kind": "evm",
            "evm_chain_id": str(evm_chain_id),
            "native_asset": native_asset,
            "native_decimals": native_decimals,
        },
    )
    return chain


def add_bitcoin_chain(session: Session, *, name: str, actor: str) -> Chain:
    """One of Bitcoin's built-in networks (custody.chains.bitcoin.networks knows no others)."""
    chain = Chain(
        name=name,
        kind="bitcoin",
        evm_chain_id=None,
        native_asset="BTC",
        native_decimals=8,
        created_at=utcnow(),
    )
    session.add(chain)
    session.flush()
    ledger.append(
        session,
        EventKind.CHAIN_ADDED,
        actor,
        {"name": name, "kind": "bitcoin", "native_asset": "BTC", "native_decimals": 8},
    )
    return chain


def ensure_builtin_chains(session: Session, actor: str) -> list[str]:
    added = []
    for chain in BUILTIN_CHAINS.values():
        if find_chain(session, chain.name) is not None:
            continue
        if chain.kind == "bitcoin":
            add_bitcoin_chain(session, name=chain.name, actor=actor)
            added.append(chain.name)
        elif chain.evm_chain_id is not None:
            add_chain(
                session,
                name=chain.name,
                evm_chain_id=chain.evm_chain_id,
                actor=actor,
                native_asset=chain.native_asset,
                native_decimals=chain.native_decimals,
            )
            added.append(chain.name)
    return added
