"""Chains custody knows: built in or added by an operator, each addition ledgered."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from custody.chains import BUILTIN_CHAINS
from custody.chains.evm.rpc import shown
from custody.errors import AlreadyExists, NotFound, ValidationFailed
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.names import CHAIN_NAME_PATTERN, InvalidName, validate_name
from custody.store.base import utcnow
from custody.store.models import Chain

_URL = re.compile(r"https?://[^\s/?#]+(/[^\s]*)?")


class ChainNotFound(NotFound):
    slug = "chain-not-found"


def chain_by_name(session: Session, name: str) -> Chain:
    chain = session.execute(select(Chain).where(Chain.name == name)).scalar_one_or_none()
    if chain is None:
        raise ChainNotFound(f"unknown chain {name!r}")
    return chain


# Built once: building a statement and its cache key cost as much as running it, and the
# signer and intake look rows up by id several times per request.
_CHAIN_BY_ID = select(Chain).where(Chain.id == bindparam("id"))


def chain_by_id(session: Session, chain_id: int) -> Chain:
    return session.execute(_CHAIN_BY_ID, {"id": chain_id}).scalar_one()


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
    node: NodeSettings | None = None,
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
        confirmations=1,
    )
    if node is not None:
        _apply(chain, node)
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
            **(node_view(chain) if node is not None else {}),
        },
    )
    return chain


@dataclass(frozen=True)
class NodeSettings:
    """How custody reaches a chain's node; a field left None keeps what the chain has."""

    rpc_url: str | None = None
    confirmations: int | None = None
    max_fee_per_gas: int | None = None
    disconnect: bool = False


def _apply(chain: Chain, node: NodeSettings) -> None:
    if chain.evm_chain_id is None and node != NodeSettings(disconnect=node.disconnect):
        raise ValidationFailed(
            f"chain {chain.name} is not an EVM chain: custody connects only EVM chains to a node"
        )
    if node.rpc_url is not None:
        if not _URL.fullmatch(node.rpc_url):
            raise ValidationFailed(f"--rpc-url must be an http(s) URL, got {node.rpc_url!r}")
        chain.rpc_url = node.rpc_url
    if node.disconnect:
        chain.rpc_url = None
    if node.confirmations is not None:
        if not 1 <= node.confirmations <= 1000:
            raise ValidationFailed(
                f"--confirmations must be between 1 and 1000, got {node.confirmations}"
            )
        chain.confirmations = node.confirmations
    if node.max_fee_per_gas is not None:
        if node.max_fee_per_gas <= 0:
            raise ValidationFailed("--max-fee-per-gas must be a positive number of wei")
        chain.max_fee_per_gas = str(node.max_fee_per_gas)


def node_view(chain: Chain) -> dict[str, Any]:
    """The node settings as the ledger and `chains list` show them; never the URL's path or
    query, which may carry a provider's API key."""
    return {
        "connected": chain.rpc_url is not None,
        "rpc": shown(chain.rpc_url) if chain.rpc_url else None,
        "confirmations": chain.confirmations,
        "max_fee_per_gas": chain.max_fee_per_gas,
    }


def set_chain(session: Session, *, name: str, node: NodeSettings, actor: str) -> Chain:
    if node == NodeSettings():
        raise ValidationFailed(
            "nothing to change: give --rpc-url, --confirmations, --max-fee-per-gas or --disconnect"
        )
    chain = chain_by_name(session, name)
    _apply(chain, node)
    session.flush()
    ledger.append(session, EventKind.CHAIN_CHANGED, actor, {"name": name, **node_view(chain)})
    return chain


def connected_chains(session: Session) -> list[Chain]:
    """EVM chains with a node (only they can have one: `_apply`)."""
    return list(
        session.execute(
            select(Chain)
            .where(Chain.rpc_url.is_not(None), Chain.evm_chain_id.is_not(None))
            .order_by(Chain.name)
        ).scalars()
    )


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
