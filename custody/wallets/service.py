"""Wallets: a name, a chain and a key, with the address derived from the key. Ledgered."""

from __future__ import annotations

from sqlalchemy.orm import Session

from custody.catalog import chains as catalog
from custody.chains import address_from_public_key
from custody.errors import AlreadyExists
from custody.hsm.keys import Algorithm
from custody.keys import repository as keys
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.names import InvalidName, validate_name
from custody.store.base import utcnow
from custody.store.models import Wallet
from custody.wallets import repository
from custody.wallets.errors import WalletRetired


def create_wallet(
    session: Session, *, name: str, chain_name: str, key_label: str, actor: str
) -> Wallet:
    validate_name("wallet", name)
    chain = catalog.chain_by_name(session, chain_name)
    key = keys.key_by_label(session, key_label)
    if key.algorithm != Algorithm.SECP256K1:
        raise InvalidName(f"key {key_label!r} is {key.algorithm}; EVM wallets need a secp256k1 key")
    if key.retired_at is not None:
        raise WalletRetired(f"key {key_label!r} is retired: it can hold no new wallet")
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
