"""Safe wallets: M of N owner keys (each on its own token where several exist) behind a Safe
v1.4.1 proxy, and an executor wallet that sends `execTransaction` and pays its gas.

The proxy address is computed when the wallet is created (CREATE2 through the factory), before
anything is deployed, so funds can be sent to it at once; `custody wallets deploy` deploys it.
An existing Safe is adopted with `--address` after its owners and threshold are read on chain.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy.orm import Session

from custody.catalog import chains as catalog
from custody.chains import address_from_public_key
from custody.chains.evm import safe
from custody.chains.evm.safe_node import Contracts, OnChainSafe
from custody.chains.values import EvmAddress
from custody.errors import AlreadyExists, CustodyError
from custody.keys import repository as keys
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.names import InvalidName, validate_name
from custody.store.base import utcnow
from custody.store.models import Chain, Key, SafeWallet, Wallet
from custody.wallets import repository
from custody.wallets.errors import WalletRetired

MAX_OWNERS = 20


class SafeMismatch(CustodyError):
    status = 409
    title = "Safe does not match"
    slug = "safe-mismatch"


@dataclass(frozen=True)
class SafeOwner:
    label: str
    token: str
    address: EvmAddress


@dataclass(frozen=True)
class SafeSetup:
    """A Safe wallet as custody knows it: what the signer and `wallets deploy` need."""

    wallet: Wallet
    chain: Chain
    owners: tuple[SafeOwner, ...]
    threshold: int
    executor: Wallet
    executor_key: Key
    deployment: safe.SafeDeployment
    salt_nonce: int
    deployed: bool

    @property
    def initializer(self) -> bytes:
        return safe.setup_initializer([owner.address for owner in self.owners], self.threshold)


def find_safe(session: Session, wallet_id: int) -> SafeWallet | None:
    return session.get(SafeWallet, wallet_id)


def owner_labels(row: SafeWallet) -> list[str]:
    labels = json.loads(row.owners)
    assert isinstance(labels, list)
    return [str(label) for label in labels]


def safe_setup(session: Session, wallet: Wallet) -> SafeSetup:
    row = find_safe(session, wallet.id)
    if row is None:
        raise InvalidName(f"wallet {wallet.name!r} is not a Safe wallet")
    chain = catalog.chain_by_id(session, wallet.chain_id)
    executor = repository.wallet_by_id(session, row.executor_wallet_id)
    return SafeSetup(
        wallet=wallet,
        chain=chain,
        owners=tuple(_owner(keys.key_by_label(session, label)) for label in owner_labels(row)),
        threshold=row.threshold,
        executor=executor,
        executor_key=keys.key_by_id(session, executor.key_id),
        deployment=safe.SafeDeployment(
            EvmAddress.parse(row.factory), EvmAddress.parse(row.singleton)
        ),
        salt_nonce=int(row.salt_nonce),
        deployed=row.deployed_at is not None,
    )


def _owner(key: Key) -> SafeOwner:
    return SafeOwner(key.label, key.token, address_from_public_key(bytes.fromhex(key.public_key)))


def create_safe_wallet(
    session: Session,
    *,
    name: str,
    chain_name: str,
    owner_labels: list[str],
    threshold: int,
    executor_name: str,
    contracts: Contracts,
    actor: str,
    adopted: tuple[EvmAddress, OnChainSafe] | None = None,
) -> Wallet:
    """A Safe wallet whose address is computed from its owners, threshold and name with
    `contracts` (custody.chains.evm.safe_node.contracts_on); or, `adopted`, the Safe found at
    that address on chain, whose owners and threshold must be exactly these."""
    validate_name("wallet", name)
    chain = catalog.chain_by_name(session, chain_name)
    if chain.kind != "evm":
        raise InvalidName(f"chain {chain_name!r} is not an EVM chain: Safe wallets are EVM only")
    if repository.find_wallet(session, name) is not None:
        raise AlreadyExists(f"wallet {name!r} already exists")
    owners = _owner_keys(session, owner_labels)
    if not 1 <= threshold <= len(owners):
        raise InvalidName(f"--threshold must be between 1 and {len(owners)} (the owners)")
    executor = _executor(session, executor_name, chain)
    addresses = [_owner(key).address for key in owners]
    if executor.address in {str(a) for a in addresses}:
        raise InvalidName("the executor must not be one of the owners")
    salt_nonce = safe.salt_nonce_for(name)
    if adopted is None:
        initializer = safe.setup_initializer(addresses, threshold)
        address = safe.proxy_address(
            contracts.deployment, initializer, salt_nonce, contracts.proxy_code
        )
    else:
        address, found = adopted
        _check_adopted(address, found, addresses, threshold)
    wallet = Wallet(
        name=name, chain_id=chain.id, key_id=owners[0].id, address=str(address), created_at=utcnow()
    )
    session.add(wallet)
    session.flush()
    session.add(
        SafeWallet(
            wallet_id=wallet.id,
            owners=json.dumps([key.label for key in owners]),
            threshold=threshold,
            executor_wallet_id=executor.id,
            salt_nonce=str(salt_nonce),
            factory=str(contracts.deployment.factory),
            singleton=str(contracts.deployment.singleton),
            deployed_at=utcnow() if adopted is not None else None,
        )
    )
    ledger.append(
        session,
        EventKind.WALLET_CREATED,
        actor,
        {
            "name": name,
            "chain": chain.name,
            "key": owners[0].label,
            "owners": [key.label for key in owners],
            "owner_addresses": [str(a) for a in addresses],
            "threshold": threshold,
            "executor": executor.name,
            "address": str(address),
            "safe": {
                "version": safe.VERSION,
                "factory": str(contracts.deployment.factory),
                "singleton": str(contracts.deployment.singleton),
                "salt_nonce": str(salt_nonce),
                "adopted": adopted is not None,
            },
        },
    )
    return wallet


def _owner_keys(session: Session, labels: list[str]) -> list[Key]:
    if len(set(labels)) != len(labels):
        raise InvalidName("each owner key may be named once")
    if not 1 <= len(labels) <= MAX_OWNERS:
        raise InvalidName(f"a Safe has 1 to {MAX_OWNERS} owners, got {len(labels)}")
    owners = []
    for label in labels:
        key = keys.key_by_label(session, label)
        if key.algorithm != "secp256k1":
            raise InvalidName(f"key {label!r} is {key.algorithm}; Safe owners are secp256k1 keys")
        if key.retired_at is not None:
            raise WalletRetired(f"key {label!r} is retired: it can own no new wallet")
        owners.append(key)
    return owners


def _executor(session: Session, name: str, chain: Chain) -> Wallet:
    executor = repository.wallet_by_name(session, name)
    if executor.chain_id != chain.id:
        raise InvalidName(f"executor wallet {name!r} is not on chain {chain.name}")
    if executor.descriptor is not None or find_safe(session, executor.id) is not None:
        raise InvalidName(f"executor wallet {name!r} must be a single-key EVM wallet")
    return executor


def _check_adopted(
    address: EvmAddress, found: OnChainSafe, owners: list[EvmAddress], threshold: int
) -> None:
    if found.version != safe.VERSION:
        raise SafeMismatch(f"the Safe at {address} is version {found.version}, not {safe.VERSION}")
    if sorted(map(str, found.owners)) != sorted(map(str, owners)):
        raise SafeMismatch(
            f"the Safe at {address} is owned by {', '.join(map(str, found.owners))}, not by "
            f"the keys given ({', '.join(map(str, owners))})"
        )
    if found.threshold != threshold:
        raise SafeMismatch(
            f"the Safe at {address} needs {found.threshold} signatures, not {threshold}"
        )


def mark_deployed(session: Session, wallet: Wallet, *, tx_hashes: list[str], actor: str) -> None:
    row = repository.locked_safe(session, wallet.id)
    row.deployed_at = utcnow()
    ledger.append(
        session,
        EventKind.WALLET_DEPLOYED,
        actor,
        {"name": wallet.name, "address": wallet.address, "transactions": tx_hashes},
    )
