"""`custody ceremony backup`: every backup-able key wrapped under a fresh KEK split into shares.

The shares are returned to the caller (the CLI shows them one custodian at a time): they never
touch the disk, the database or the ledger. The folder and its ledger entry exist together or
not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from custody.ceremonies import kek as keks
from custody.ceremonies import manifest as folder
from custody.ceremonies.authority import Authorise, ungoverned
from custody.ceremonies.errors import CeremonyRefused
from custody.chains.bitcoin.descriptors import compressed, wallet_script
from custody.hsm.keys import Algorithm, Backup, WrappedKey
from custody.keys import repository as keys
from custody.keys import service as key_service
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.ledger.service import rfc3339
from custody.runtime import Runtime
from custody.store.base import utcnow
from custody.store.models import Chain, Key, Wallet
from custody.wallets import repository as wallets

NOT_EXTRACTABLE = "never extractable (generated with --no-backup, or before key ceremonies)"
NOT_WRAPPABLE = "Ed25519: the token cannot wrap it"
# The KEK is imported into one token, and a token wraps only its own keys.
ON_ANOTHER_TOKEN = "on token {token}: a backup ceremony copies the main token's keys only"  # noqa: S105


@dataclass(frozen=True)
class Plan:
    directory: Path
    shares: int
    threshold: int
    custodians: tuple[str | None, ...]  # the name of whoever holds share i + 1

    @classmethod
    def make(cls, directory: Path, *, shares: int, threshold: int, custodians: list[str]) -> Plan:
        keks.check_counts(shares, threshold)
        if custodians and len(custodians) != shares:
            raise CeremonyRefused(
                f"name one --custodian per share: {shares} shares, {len(custodians)} custodians"
            )
        if len(set(custodians)) != len(custodians):
            raise CeremonyRefused("each custodian holds one share: a name is given twice")
        for name in custodians:
            if not folder.CUSTODIAN_NAME.fullmatch(name):
                raise CeremonyRefused(f"custodian name {name!r}: use 1-64 printable characters")
        folder.check_target(directory)
        names = tuple(custodians) if custodians else (None,) * shares
        return cls(directory, shares, threshold, names)

    def subject(self) -> dict[str, Any]:
        """What a governance proposal for this backup names (ceremony_approvals)."""
        return {
            "directory": str(self.directory),
            "shares": self.shares,
            "threshold": self.threshold,
            "custodians": list(self.custodians),
        }


@dataclass(frozen=True)
class Made:
    directory: Path
    manifest_sha256: str
    ledger_index: int
    manifest: folder.Manifest
    shares: list[str]  # share number i + 1 is shares[i], for custodian i + 1

    def __repr__(self) -> str:  # never show the words
        return f"Made({self.directory}, manifest {self.manifest_sha256}, {len(self.shares)} shares)"


@dataclass(frozen=True)
class _Inventory:
    included: list[tuple[Key, list[dict[str, Any]]]]  # backup-able keys and their EVM wallets
    excluded: list[dict[str, str]]
    bitcoin_wallets: list[dict[str, Any]]  # each with its descriptor's owners and threshold


def back_up(runtime: Runtime, plan: Plan, actor: str, authorise: Authorise = ungoverned) -> Made:
    # (1) what to back up: every backup-able key of this installation, with its wallets
    with runtime.db.read() as session:
        inventory = _inventory(session, set(runtime.settings.extra_token_labels.values()))
        ledger_size = ledger.size(session)
    if not inventory.included:
        raise CeremonyRefused(
            "nothing to back up: no key of this installation is backup-able "
            "(see `custody keys list`)"
        )

    # (2) a fresh KEK, in memory only, split into the custodians' shares
    kek = keks.new_kek()
    split = keks.split(kek, shares=plan.shares, threshold=plan.threshold)

    # (3) on the token: the security officer brings the KEK in as a trusted wrap-only key; each
    # key is wrapped, and each blob unwrapped again as a session object that must sign for the
    # key's public key, so the backup is known to restore before anyone holds a share
    with runtime.key_ceremony(kek, backup=True) as ceremony:
        wrapped = [ceremony.wrap(key.label) for key, _ in inventory.included]
        for (key, _), item in zip(inventory.included, wrapped, strict=True):
            _require_recorded(key, item)
            ceremony.check(item)

    # (4) the folder: one blob per key, and the manifest authenticated under the KEK
    body = _manifest(runtime, plan, split, kek, inventory, wrapped, ledger_size)
    data = folder.render(body)
    manifest = folder.parse(data)  # what restore will read, read once here
    folder.write(plan.directory, data, {item.info.label: item.blob for item in wrapped})
    digest = folder.sha256_hex(data)

    # (5) the ledger: the manifest's digest, never a share; each key's newest backup
    try:
        with runtime.db.write() as session:
            index = _record(session, plan, manifest, digest, actor, authorise(session))
    except BaseException:
        folder.remove(plan.directory)
        raise
    return Made(plan.directory, digest, index, manifest, split.shares)


def _inventory(session: Session, other_tokens: set[str]) -> _Inventory:
    on_key: dict[int, list[dict[str, Any]]] = {}
    bitcoin: list[tuple[Wallet, Chain]] = []
    multisig = wallets.safe_wallet_ids(session)
    for wallet, chain, key in wallets.wallets(session):
        if wallet.id in multisig:
            # A Safe's address is not its first owner key's: its owner keys are backed up, and
            # after a restore `wallets create --safe --address` adopts the Safe on chain.
            continue
        if chain.evm_chain_id is None:
            bitcoin.append((wallet, chain))  # a descriptor over several keys: below
            continue
        on_key.setdefault(key.id, []).append(
            {
                "name": wallet.name,
                "chain": chain.name,
                "evm_chain_id": chain.evm_chain_id,
                "address": wallet.address,
            }
        )
    included, excluded = [], []
    recorded = keys.keys(session)
    for key in recorded:
        if key.retired_at is not None:
            continue  # destroyed on the token; the backups made before still hold it
        if key.token in other_tokens:
            reason = ON_ANOTHER_TOKEN.format(token=key.token)
            excluded.append({"label": key.label, "algorithm": key.algorithm, "reason": reason})
        elif key.backup == Backup.TRUSTED_WRAP and key.algorithm == Algorithm.SECP256K1:
            included.append((key, on_key.get(key.id, [])))
        else:
            reason = NOT_WRAPPABLE if key.algorithm == Algorithm.ED25519 else NOT_EXTRACTABLE
            excluded.append({"label": key.label, "algorithm": key.algorithm, "reason": reason})
    in_backup = {key.label for key, _ in included}
    by_public = {
        compressed(bytes.fromhex(key.public_key)).hex(): key.label
        for key in recorded
        if key.algorithm == Algorithm.SECP256K1
    }
    described = [_bitcoin_wallet(wallet, chain, by_public) for wallet, chain in bitcoin]
    bitcoin_wallets = [
        entry for entry in described if any(o["label"] in in_backup for o in entry["owners"])
    ]
    return _Inventory(included, excluded, bitcoin_wallets)


def _bitcoin_wallet(wallet: Wallet, chain: Chain, by_public: dict[str, str]) -> dict[str, Any]:
    """The wallet as `wallets create` makes it again: its owners in the descriptor's order,
    each a key label of this installation or (an external cosigner) a bare public key. A
    wallet none of whose keys is in the backup is not the backup's to restore."""
    assert wallet.descriptor is not None  # every Bitcoin wallet has one (wallets.service)
    script = wallet_script(wallet.descriptor)
    return {
        "name": wallet.name,
        "chain": chain.name,
        "address": wallet.address,
        "descriptor": wallet.descriptor,
        "threshold": script.threshold if script.is_multisig else None,
        "owners": [
            {"label": by_public.get(owner.hex()), "public_key": owner.hex()}
            for owner in script.owners
        ],
    }


def _require_recorded(key: Key, wrapped: WrappedKey) -> None:
    """The token's key is the one custody recorded (its wallets' addresses derive from it)."""
    if (wrapped.info.public_key.hex(), wrapped.info.key_id) != (key.public_key, key.key_id):
        raise CeremonyRefused(
            f"key {key.label!r} on the token is not the key custody recorded "
            "(public key or CKA_ID differ): investigate before backing it up"
        )


def _manifest(  # noqa: PLR0917  (private: one call site, every value it renders)
    runtime: Runtime,
    plan: Plan,
    split: keks.Split,
    kek: bytes,
    inventory: _Inventory,
    wrapped: list[WrappedKey],
    ledger_size: int,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "format": folder.FORMAT,
        "created_at": rfc3339(utcnow()),
        "source": {
            "ledger_origin": runtime.settings.ledger_origin,
            "token": runtime.token_label,
            "ledger_size": ledger_size,
        },
        "custodians": [
            {"share": number, "name": name} for number, name in enumerate(plan.custodians, 1)
        ],
        "shares": {
            "scheme": "slip39",
            "identifier": split.identifier,
            "threshold": plan.threshold,
            "count": plan.shares,
        },
        "kek": {
            "algorithm": "AES-256",
            "check_method": keks.CHECK_METHOD,
            "check_value": keks.check_value(kek),
        },
        "wrapping": "CKM_AES_KEY_WRAP_PAD",
        "keys": [
            {
                "label": item.info.label,
                "algorithm": str(item.info.algorithm),
                "key_id": item.info.key_id,
                "public_key": item.info.public_key.hex(),
                "blob": folder.blob_path(item.info.label),
                "blob_sha256": folder.sha256_hex(item.blob),
                "wallets": key_wallets,
            }
            for item, (_, key_wallets) in zip(wrapped, inventory.included, strict=True)
        ],
        "not_included": inventory.excluded,
        "bitcoin_wallets": inventory.bitcoin_wallets,
    }
    body["mac"] = keks.manifest_mac(kek, folder.unsigned_bytes(body))
    return body


def _record(  # noqa: PLR0917  (private: one call site)
    session: Session,
    plan: Plan,
    manifest: folder.Manifest,
    digest: str,
    actor: str,
    approvals: dict[str, Any],
) -> int:
    entry = ledger.append(
        session,
        EventKind.CEREMONY_BACKUP,
        actor,
        {
            "manifest_sha256": digest,
            "format": manifest.format,
            "directory": str(plan.directory),
            "shares": manifest.shares.count,
            "threshold": manifest.shares.threshold,
            "slip39_identifier": manifest.shares.identifier,
            "custodians": [c.name for c in manifest.custodians],
            "kek_check_value": manifest.kek.check_value,
            "keys": [key.label for key in manifest.keys],
            "not_included": [key.label for key in manifest.not_included],
        }
        | approvals,
    )
    for item in manifest.keys:
        key_service.record_backup(
            session,
            keys.key_by_label(session, item.label),
            manifest_sha256=digest,
            ledger_index=entry.index,
        )
    return entry.index
