"""`custody ceremony verify`: is a backup folder whole, and does it hold what it should?

Needs no shares, so custodians can test their backups as often as they like. Each problem is
one line; an empty list means the folder restores this installation's backup-able keys and
their wallets (short of unwrapping them, which needs a quorum).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from custody.ceremonies import repository
from custody.ceremonies.errors import BackupInvalid
from custody.ceremonies.manifest import Manifest, read_blobs, read_manifest
from custody.chains.bitcoin.descriptors import compressed, wallet_script
from custody.hsm.errors import KeyNotFound
from custody.hsm.keys import Backup
from custody.keys import repository as keys
from custody.runtime import Runtime
from custody.store.models import Key
from custody.wallets import repository as wallets


@dataclass
class Report:
    directory: Path
    manifest_sha256: str | None = None
    ledger_index: int | None = None
    keys: list[str] = field(default_factory=list)
    wallets: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(runtime: Runtime, directory: Path) -> Report:
    report = Report(directory)
    # (1) the manifest: present and in the format custody writes
    try:
        manifest, _, digest = read_manifest(directory)
    except BackupInvalid as exc:
        report.problems.append(exc.message)
        return report
    report.manifest_sha256 = digest
    report.keys = [key.label for key in manifest.keys]
    report.wallets = [wallet.name for key in manifest.keys for wallet in key.wallets]
    report.wallets += [wallet.name for wallet in manifest.bitcoin_wallets or ()]

    # (2) recorded: this ledger's `ceremony.backup` (or `ceremony.restore`) names this manifest
    with runtime.db.read() as session:
        report.ledger_index = repository.backup_entry_index(session, digest)
        recorded = {key.label: key for key in keys.keys(session)}
        listed = wallets.wallets(session)
        on_keys = {
            (wallet.name, chain.name, wallet.address, key.label)
            for wallet, chain, key in listed
            if chain.evm_chain_id is not None  # Bitcoin wallets: by descriptor, below
        }
        described = {
            (wallet.name, chain.name, wallet.address, wallet.descriptor)
            for wallet, chain, _ in listed
            if wallet.descriptor is not None
        }
    if report.ledger_index is None:
        report.problems.append(
            f"manifest.json (SHA-256 {digest}) is recorded by no ceremony.backup or "
            "ceremony.restore entry of this installation's ledger: it was changed after the "
            "backup, or belongs to another installation"
        )

    # (3) the blobs: each present, with the digest the manifest records
    report.problems.extend(read_blobs(directory, manifest)[1])

    # (4) each key in it is this installation's, on the token, with the recorded public key
    report.problems.extend(_keys_match(runtime, manifest, recorded))

    # (5) everything that must be in it is: every backup-able key and every wallet on them
    main = {
        label: key
        for label, key in recorded.items()
        if key.token not in runtime.settings.extra_token_labels.values()
    }  # a backup holds the main token's keys only (custody.ceremonies.backup)
    report.problems.extend(_nothing_missing(manifest, main, on_keys))
    report.problems.extend(_bitcoin_wallets_match(manifest, described))
    return report


def _keys_match(runtime: Runtime, manifest: Manifest, recorded: dict[str, Key]) -> list[str]:
    problems = []
    for entry in manifest.keys:
        key = recorded.get(entry.label)
        if key is None:
            problems.append(f"key {entry.label!r} in the backup is not a key of this installation")
            continue
        if key.retired_at is not None:
            continue  # retired since this backup: destroyed on the token, as it should be
        if (key.public_key, key.key_id) != (entry.public_key, entry.key_id):
            problems.append(
                f"key {entry.label!r} in the backup is not the key this installation records "
                "under that label (public key or CKA_ID differ)"
            )
            continue
        token = runtime.route(key.token)  # a backup restored into another token lives there
        try:
            on_token = runtime.token_for(token).get_key(entry.label)
        except KeyNotFound:
            problems.append(f"key {entry.label!r} is not on token {token!r}")
            continue
        if on_token.public_key.hex() != entry.public_key:
            problems.append(
                f"key {entry.label!r} on token {token!r} has another public key than the backup"
            )
    return problems


def _nothing_missing(
    manifest: Manifest, recorded: dict[str, Key], on_keys: set[tuple[str, str, str, str]]
) -> list[str]:
    problems = []
    in_backup = {key.label for key in manifest.keys}
    for label, key in sorted(recorded.items()):
        if key.backup == Backup.TRUSTED_WRAP and key.retired_at is None and label not in in_backup:
            problems.append(
                f"key {label!r} is backup-able but not in this backup: make a new backup"
            )
    backed_up = {
        (wallet.name, wallet.chain, wallet.address, key.label)
        for key in manifest.keys
        for wallet in key.wallets
    }
    for name, chain, address, label in sorted(on_keys):
        if label in in_backup and (name, chain, address, label) not in backed_up:
            problems.append(
                f"wallet {name!r} (key {label!r} on {chain}) is not in this backup: make a "
                "new backup"
            )
    for name, chain, address, label in sorted(backed_up - on_keys):
        problems.append(
            f"wallet {name!r} (key {label!r} on {chain}, {address}) in the backup is not a "
            "wallet of this installation"
        )
    return problems


def _bitcoin_wallets_match(
    manifest: Manifest, described: set[tuple[str, str, str, str]]
) -> list[str]:
    """Every Bitcoin wallet with an owner key in the backup is in it, as it is here. A backup
    made before manifests recorded Bitcoin wallets holds none: its keys only."""
    if manifest.bitcoin_wallets is None:
        return []
    in_backup = {compressed(bytes.fromhex(key.public_key)) for key in manifest.keys}
    ours = {
        wallet for wallet in described if in_backup.intersection(wallet_script(wallet[3]).owners)
    }
    backed_up = {
        (wallet.name, wallet.chain, wallet.address, wallet.descriptor)
        for wallet in manifest.bitcoin_wallets
    }
    problems = [
        f"wallet {name!r} ({chain}, {address}) is not in this backup as it is here: make a new "
        "backup"
        for name, chain, address, _ in sorted(ours - backed_up)
    ]
    problems += [
        f"wallet {name!r} ({chain}, {address}) in the backup is not a wallet of this installation"
        for name, chain, address, _ in sorted(backed_up - ours)
    ]
    return problems
