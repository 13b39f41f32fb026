"""Recording a key generated on a token (or restored into one), with its ledger entry."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from custody.hsm.keys import Backup, KeyInfo
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.store.base import utcnow
from custody.store.models import Key, KeyBackup


def record_key(session: Session, *, info: KeyInfo, token: str, backup: Backup, actor: str) -> Key:
    """Remember a key that was just generated on the token, and ledger the ceremony."""
    key = _add(session, info, token, backup)
    ledger.append(session, EventKind.KEY_GENERATED, actor, _entry(info, token, backup))
    return key


def record_restored_key(
    session: Session, *, info: KeyInfo, token: str, manifest_sha256: str, actor: str
) -> Key:
    """Remember a key a restore ceremony unwrapped into the token from the backup named by
    its manifest's digest (restored keys are backup-able, as they were when backed up)."""
    key = _add(session, info, token, Backup.TRUSTED_WRAP)
    entry = _entry(info, token, Backup.TRUSTED_WRAP) | {"manifest_sha256": manifest_sha256}
    ledger.append(session, EventKind.KEY_RESTORED, actor, entry)
    return key


def record_backup(session: Session, key: Key, *, manifest_sha256: str, ledger_index: int) -> None:
    """`key` is in the backup whose manifest has this digest (made, or restored from)."""
    session.add(
        KeyBackup(
            key_id=key.id,
            manifest_sha256=manifest_sha256,
            ledger_index=ledger_index,
            created_at=utcnow(),
        )
    )


def _add(session: Session, info: KeyInfo, token: str, backup: Backup) -> Key:
    key = Key(
        label=info.label,
        algorithm=str(info.algorithm),
        token=token,
        key_id=info.key_id,
        public_key=info.public_key.hex(),
        backup=str(backup),
        created_at=utcnow(),
    )
    session.add(key)
    session.flush()
    return key


def _entry(info: KeyInfo, token: str, backup: Backup) -> dict[str, Any]:
    return {
        "label": info.label,
        "algorithm": str(info.algorithm),
        "token": token,
        "key_id": info.key_id,
        "public_key": info.public_key.hex(),
        "backup": str(backup),
    }
