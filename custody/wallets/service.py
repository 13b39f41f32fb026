"""Wallets: a name, a chain and a key, with the address derived from the key. Ledgered.

A Bitcoin wallet is a BIP-380 descriptor over one key (P2WPKH) or M of N owner keys (P2WSH
`sortedmulti`); its address is the descriptor's, and its `key_id` is its first owner key.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from custody.catalog import chains as catalog
from custody.chains import address_from_public_key
from custody.chains.bitcoin.descriptors import build_descriptor, wallet_script
from custody.chains.errors import InvalidPayload
from custody.errors import AlreadyExists
from custody.hsm.keys import Algorithm
from custody.keys import repository as keys
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.names import InvalidName, validate_name
from custody.store.base import utcnow
from custody.store.models import Key, Wallet
from custody.wallets import repository
from custody.wallets.errors import WalletRetired


def create_wallet(
    session: Session, *, name: str, chain_name: str, key_label: str, actor: str
) -> Wallet:
    validate_name("wallet", name)
    chain = catalog.chain_by_name(session, chain_name)
    if chain.kind == "bitcoin":
        return create_bitcoin_wallet(
            session,
            name=name,
            chain_name=chain_name,
            owner_labels=[key_label],
            threshold=None,
            actor=actor,
        )
    key = _usable_key(session, key_label)
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


def create_bitcoin_wallet(
    session: Session,
    *,
    name: str,
    chain_name: str,
    owner_labels: list[str],
    threshold: int | None,
    actor: str,
) -> Wallet:
    """P2WPKH for one key and no threshold; P2WSH sortedmulti(threshold) over the owners.

    Owner keys are all this installation's keys for now; where several tokens exist, each key's
    record names its token and the signer signs with each on its own (custody.signing.payloads).
    """
    validate_name("wallet", name)
    chain = catalog.chain_by_name(session, chain_name)
    if chain.kind != "bitcoin":
        raise InvalidName(f"chain {chain_name!r} is not a Bitcoin network: --owners is for Bitcoin")
    if len(set(owner_labels)) != len(owner_labels):
        raise InvalidName("each owner key may be named once")
    owners = [_usable_key(session, label) for label in owner_labels]
    if repository.find_wallet(session, name) is not None:
        raise AlreadyExists(f"wallet {name!r} already exists")
    try:
        descriptor = build_descriptor([bytes.fromhex(k.public_key) for k in owners], threshold)
    except InvalidPayload as exc:
        raise InvalidName(exc.message) from None
    address = wallet_script(descriptor).address(chain.name)
    wallet = Wallet(
        name=name,
        chain_id=chain.id,
        key_id=owners[0].id,
        address=address,
        descriptor=descriptor,
        created_at=utcnow(),
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
            "key": owners[0].label,
            "owners": [k.label for k in owners],
            "address": address,
            "descriptor": descriptor,
        },
    )
    return wallet


def _usable_key(session: Session, label: str) -> Key:
    key = keys.key_by_label(session, label)
    if key.algorithm != Algorithm.SECP256K1:
        raise InvalidName(f"key {label!r} is {key.algorithm}; wallets need a secp256k1 key")
    if key.retired_at is not None:
        raise WalletRetired(f"key {label!r} is retired: it can hold no new wallet")
    return key
