"""A backup's Bitcoin wallets made again at restore: each descriptor rebuilt from the manifest's
owners and threshold, and checked against the manifest's descriptor and address before anything
is imported; then created with the restored keys, and checked once more.

A Bitcoin wallet is a descriptor over one key or M of N (custody.wallets.service), so the manifest
lists it once, beside the keys (`bitcoin_wallets`), not under one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from custody.catalog import chains as catalog
from custody.ceremonies.errors import BackupInvalid, CeremonyRefused
from custody.ceremonies.manifest import BitcoinOwner, BitcoinWalletEntry, KeyEntry, Manifest
from custody.chains.bitcoin.descriptors import build_descriptor, compressed, wallet_script
from custody.chains.errors import InvalidPayload
from custody.keys import repository as keys
from custody.store.models import Key
from custody.wallets import repository as wallets
from custody.wallets import service as wallet_service

OLD_MANIFEST = (
    "this backup was made before backups recorded Bitcoin wallets: any Bitcoin wallet on its "
    "keys was not re-created; make each again with `custody wallets create NAME --chain C "
    "--key L` (or `--owners L1,L2,... --threshold M`, in the original order), which gives the "
    "same descriptor and address"
)


@dataclass(frozen=True)
class Plan:
    make: list[BitcoinWalletEntry] = field(default_factory=list)
    not_recreated: list[dict[str, str | None]] = field(default_factory=list)  # name, reason


def plan(session: Session, manifest: Manifest) -> Plan:
    """Which of the backup's Bitcoin wallets this installation can make again; BackupInvalid
    or CeremonyRefused, before anything is imported, for one that disagrees or collides."""
    if manifest.bitcoin_wallets is None:
        return Plan(not_recreated=[{"name": None, "reason": OLD_MANIFEST}])
    backed_up = {entry.label: entry for entry in manifest.keys}
    result = Plan()
    for wallet in manifest.bitcoin_wallets:
        _check(session, wallet, backed_up)
        missing = [
            owner.label
            for owner in wallet.owners
            if owner.label is not None
            and owner.label not in backed_up
            and not _held_here(session, owner)
        ]
        if missing:
            reason = (
                f"owner key {missing[0]!r} is not in this backup, nor a usable key of this "
                "installation with the same public key: restore its own backup first, then "
                "`custody wallets create` with the same owners and threshold"
            )
            result.not_recreated.append({"name": wallet.name, "reason": reason})
        else:
            result.make.append(wallet)
    return result


def recreate(session: Session, wallet: BitcoinWalletEntry, actor: str) -> dict[str, str]:
    """The wallet, made by `wallets create` from the restored keys: the same descriptor and
    address as in the manifest, or BackupInvalid (and the whole restore rolls back)."""
    made = wallet_service.create_bitcoin_wallet(
        session,
        name=wallet.name,
        chain_name=wallet.chain,
        owner_labels=[owner.label or owner.public_key for owner in wallet.owners],
        threshold=wallet.threshold,
        actor=actor,
    )
    if (made.address, made.descriptor) != (wallet.address, wallet.descriptor):
        raise BackupInvalid(f"wallet {wallet.name!r} would get another address or descriptor")
    return {
        "name": made.name,
        "chain": wallet.chain,
        "key": next(owner.label for owner in wallet.owners if owner.label is not None),
        "address": made.address,
        "descriptor": wallet.descriptor,
    }


def _check(session: Session, wallet: BitcoinWalletEntry, backed_up: dict[str, KeyEntry]) -> None:
    if wallets.find_wallet(session, wallet.name) is not None:
        raise CeremonyRefused(f"wallet {wallet.name!r} already exists in this installation")
    chain = catalog.find_chain(session, wallet.chain)
    if chain is None or chain.kind != "bitcoin":
        raise CeremonyRefused(
            f"wallet {wallet.name!r} is on Bitcoin network {wallet.chain!r}, which this "
            "installation does not know as one"
        )
    labelled = [owner for owner in wallet.owners if owner.label in backed_up]
    if not labelled:
        raise BackupInvalid(f"wallet {wallet.name!r}: none of its owner keys is in the backup")
    for owner in labelled:
        entry = backed_up[owner.label or ""]
        if compressed(bytes.fromhex(entry.public_key)).hex() != owner.public_key:
            raise BackupInvalid(
                f"wallet {wallet.name!r}: owner {owner.label!r} is not the backup's key "
                "of that label"
            )
    try:
        descriptor = build_descriptor(
            [bytes.fromhex(owner.public_key) for owner in wallet.owners], wallet.threshold
        )
    except InvalidPayload as exc:
        raise BackupInvalid(f"wallet {wallet.name!r}: {exc.message}") from None
    if descriptor != wallet.descriptor:
        raise BackupInvalid(
            f"wallet {wallet.name!r}: descriptor {wallet.descriptor} is not the one its owners "
            f"and threshold give ({descriptor})"
        )
    derived = wallet_script(descriptor).address(chain.name)
    if derived != wallet.address:
        raise BackupInvalid(
            f"wallet {wallet.name!r}: address {wallet.address} does not derive from its "
            f"descriptor on {chain.name} ({derived})"
        )


def _held_here(session: Session, owner: BitcoinOwner) -> bool:
    """An owner key not in the backup that this installation already holds, unretired, under
    the same label and public key (a key set spread over tokens backed up one by one)."""
    key: Key | None = keys.find_key(session, owner.label or "")
    return (
        key is not None
        and key.retired_at is None
        and compressed(bytes.fromhex(key.public_key)).hex() == owner.public_key
    )
