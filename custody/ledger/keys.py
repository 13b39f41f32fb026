"""Which ledger key signs which checkpoints: the key schedule kept in `ledger_keys`.

Before any rotation the table is empty and the key labelled CUSTODY_LEDGER_KEY_LABEL signs every
checkpoint (installations from before rotation existed keep working unchanged). The first
`custody ledger rotate-key` records that key as generation 0 (from size 0) and the new key as
generation 1, which signs from the tree size just after its `ledger.key_rotated` entry; each
later rotation adds one row. From then on the table, not the setting, names the current key.

A key signs the sizes from its first size up to the next key's first size, that one included:
the checkpoint at a handover size carries both keys' signatures, so the old key signs over the
rotation entry that names its successor (custody.ledger.verify.KeySchedule).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger.note import verifier_key
from custody.ledger.verify import KeySchedule, KeySpan, parse_verifier_key
from custody.store.base import utcnow
from custody.store.models import LedgerKey


@dataclass(frozen=True)
class SigningKey:
    """A ledger key on the token and the first tree size it signs."""

    label: str
    public_key: bytes
    first_size: int


def recorded(session: Session) -> list[LedgerKey]:
    """The rows of `ledger_keys`, oldest first; empty before the first rotation."""
    return list(session.execute(select(LedgerKey).order_by(LedgerKey.generation)).scalars())


def signing_keys(session: Session, first: SigningKey) -> tuple[SigningKey, ...]:
    """Every ledger key, oldest first; `first` (the configured key) when none was rotated."""
    rows = recorded(session)
    if not rows:
        return (first,)
    return tuple(SigningKey(r.label, bytes.fromhex(r.public_key), r.first_size) for r in rows)


def add(
    session: Session,
    *,
    generation: int,
    label: str,
    public_key: bytes,
    first_size: int,
    ledger_index: int | None,
) -> None:
    """Record a ledger key (custody.ceremonies.rotation, in the rotation's transaction)."""
    session.add(
        LedgerKey(
            generation=generation,
            label=label,
            public_key=public_key.hex(),
            first_size=first_size,
            ledger_index=ledger_index,
            created_at=utcnow(),
        )
    )


def keys_at(keys: tuple[SigningKey, ...], size: int) -> list[SigningKey]:
    """The keys that sign a checkpoint of `size`: both at a handover, else the one current."""
    wanted = []
    for i, key in enumerate(keys):
        end = keys[i + 1].first_size if i + 1 < len(keys) else None
        if key.first_size <= size and (end is None or size <= end):
            wanted.append(key)
    return wanted


def schedule(origin: str, keys: tuple[SigningKey, ...]) -> KeySchedule:
    return KeySchedule(
        tuple(
            KeySpan(parse_verifier_key(verifier_key(origin, k.public_key)), k.first_size)
            for k in keys
        )
    )
