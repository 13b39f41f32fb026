"""What `custody keys list` says about each key's backup, and what to do about it."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from custody.hsm.keys import Algorithm, Backup
from custody.ledger.service import rfc3339
from custody.store.models import Key, KeyBackup


def backup_status(key: Key, latest: KeyBackup | None, *, other_tokens: Collection[str] = ()) -> str:
    """One line: in which backup the key is, or why there is none and what to do.
    `other_tokens`: the installation's extra tokens, whose keys no backup ceremony copies."""
    if key.retired_at is not None:
        return f"retired {rfc3339(key.retired_at)[:10]}: destroyed on the token, signs nothing"
    if key.token in other_tokens and latest is None:
        return (
            f"on token {key.token}: backup ceremonies copy the main token's keys only "
            "(a backup for other tokens is not built)"
        )
    if key.backup == Backup.TRUSTED_WRAP:
        if latest is None:
            return "backup-able, in no backup yet (custody ceremony backup)"
        day = rfc3339(latest.created_at)[:10]
        return f"backed up {day} (manifest {latest.manifest_sha256[:12]})"
    if key.algorithm == Algorithm.ED25519:
        return "no backup possible (Ed25519, not wrappable): a service key, replaced if lost"
    return "no backup possible (never extractable): move its funds to a wallet on a new key"


def backup_short(key: Key, latest: KeyBackup | None, *, other_tokens: Collection[str] = ()) -> str:
    """The same, in a table cell."""
    if key.retired_at is not None:
        return f"retired {rfc3339(key.retired_at)[:10]}"
    if key.token in other_tokens and latest is None:
        return "in no backup (not the main token)"
    if key.backup == Backup.TRUSTED_WRAP:
        if latest is None:
            return "backup-able, not backed up yet"
        return f"backed up {rfc3339(latest.created_at)[:10]}"
    if key.algorithm == Algorithm.ED25519:
        return "no backup possible (Ed25519)"
    return "no backup possible"


def needs_action(key: Key, latest: KeyBackup | None) -> bool:
    """A wallet key no backup holds: one that can be backed up, or one that never can."""
    return key.algorithm == Algorithm.SECP256K1 and latest is None and key.retired_at is None


def last_backup(latest: KeyBackup | None) -> dict[str, Any] | None:
    if latest is None:
        return None
    return {
        "manifest_sha256": latest.manifest_sha256,
        "time": rfc3339(latest.created_at),
        "ledger_index": latest.ledger_index,
    }
