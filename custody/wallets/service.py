"""Wallets: a name, a chain and a key, with the address derived from the key. Ledgered.

A Bitcoin wallet is a BIP-380 descriptor over one key (P2WPKH) or M of N owner keys (P2WSH
`sortedmulti`); its address is the descriptor's, and its `key_id` is its first owner key.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from custody.catalog import chains as catalog
from custody.chains import address_from_public_key
from custody.chains.bitcoin.descriptors import build_descriptor, compressed, wallet_script
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

    An owner is a key label, or (an external cosigner's key) 66 hex digits of a compressed
    public key. Custody's owner keys are all on the installation's token for now; where several
    tokens exist, each key's record names its token (custody.signing.payloads chooses).
    """
    validate_name("wallet", name)
    chain = catalog.chain_by_name(session, chain_name)
    if chain.kind != "bitcoin":
        raise InvalidName(f"chain {chain_name!r} is not a Bitcoin network: --owners is for Bitcoin")
    if len(set(owner_labels)) != len(owner_labels):
        raise InvalidName("each owner key may be named once")
    owners = [_owner(session, label) for label in owner_labels]
    held = [owner for owner in owners if isinstance(owner, Key)]
    if not held:
        raise InvalidName("at least one owner must be a key of this installation")
    if threshold is None and len(owners) != 1:
        raise InvalidName("give --threshold with several owners")
    if repository.find_wallet(session, name) is not None:
        raise AlreadyExists(f"wallet {name!r} already exists")
    public_keys = [
        bytes.fromhex(owner.public_key) if isinstance(owner, Key) else owner for owner in owners
    ]
    try:
        descriptor = build_descriptor(public_keys, threshold)
    except InvalidPayload as exc:
        raise InvalidName(exc.message) from None
    address = wallet_script(descriptor).address(chain.name)
    wallet = Wallet(
        name=name,
        chain_id=chain.id,
        key_id=held[0].id,
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
            "key": held[0].label,
            "owners": [o.label if isinstance(o, Key) else o.hex() for o in owners],
            "address": address,
            "descriptor": descriptor,
        },
    )
    return wallet


def _owner(session: Session, text: str) -> Key | bytes:
    """A key of this installation by label, or an external cosigner's compressed public key."""
    if len(text) == 66 and text[:2] in ("02", "03") and keys.find_key(session, text) is None:
        try:
            return compressed(bytes.fromhex(text))
        except (ValueError, InvalidPayload):
            raise InvalidName(f"owner {text!r} is not a valid compressed public key") from None
    return _usable_key(session, text)


def _usable_key(session: Session, label: str) -> Key:
    key = keys.key_by_label(session, label)
    if key.algorithm != Algorithm.SECP256K1:
        raise InvalidName(f"key {label!r} is {key.algorithm}; wallets need a secp256k1 key")
    if key.retired_at is not None:
        raise WalletRetired(f"key {label!r} is retired: it can hold no new wallet")
    return key
