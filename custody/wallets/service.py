"""Chains, key records and wallets. Each change is written with its ledger entry."""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from custody.chains import BUILTIN_CHAINS, address_from_public_key
from custody.hsm.keys import Algorithm, KeyInfo
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.store.base import utcnow
from custody.store.models import Chain, Key, Wallet
from custody.wallets import repository
from custody.wallets.errors import AlreadyExists, InvalidName

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
CHAIN_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


def validate_name(kind: str, name: str, pattern: re.Pattern[str] = NAME_PATTERN) -> str:
    if not pattern.fullmatch(name):
        rule = (
            "lower-case letters, digits, '.', '_' or '-', starting with a letter or digit, "
            "at most 64 characters"
            if pattern is NAME_PATTERN
            else "lower-case letters, digits or '-', starting with a letter, at most 32 characters"
        )
        raise InvalidName(f"{kind} name {name!r} must be {rule}")
    return name


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
    if repository.find_chain(session, name) is not None:
        raise AlreadyExists(f"chain {name!r} already exists")
    for existing in repository.chains(session):
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


def ensure_builtin_chains(session: Session, actor: str) -> list[str]:
    added = []
    for chain in BUILTIN_CHAINS.values():
        if repository.find_chain(session, chain.name) is None:
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


def record_key(session: Session, *, info: KeyInfo, token: str, actor: str) -> Key:
    """Remember a key that was just generated on the token, and ledger the ceremony."""
    key = Key(
        label=info.label,
        algorithm=str(info.algorithm),
        token=token,
        key_id=info.key_id,
        public_key=info.public_key.hex(),
        created_at=utcnow(),
    )
    session.add(key)
    session.flush()
    ledger.append(
        session,
        EventKind.KEY_GENERATED,
        actor,
        {
            "label": info.label,
            "algorithm": str(info.algorithm),
            "token": token,
            "key_id": info.key_id,
            "public_key": info.public_key.hex(),
        },
    )
    return key


def create_wallet(
    session: Session, *, name: str, chain_name: str, key_label: str, actor: str
) -> Wallet:
    validate_name("wallet", name)
    chain = repository.chain_by_name(session, chain_name)
    key = repository.key_by_label(session, key_label)
    if key.algorithm != Algorithm.SECP256K1:
        raise InvalidName(f"key {key_label!r} is {key.algorithm}; EVM wallets need a secp256k1 key")
    if repository.find_wallet(session, name) is not None:
        raise AlreadyExists(f"wallet {name!r} already exists")
    address = str(address_from_public_key(bytes.fromhex(key.public_key)))
    wallet = Wallet(
        name=name, chain_id=chain.id, key_id=key.id, address=address, created_at=utcnow()
    )
    session.add(wallet)
    session.flush()
    ledger.append(
        session,
        EventKind.WALLET_CREATED,
        actor,
        {
            "name": name,
            "chain": chain.name,
            "key": key.label,
            "address": address,
        },
    )
    return wallet
