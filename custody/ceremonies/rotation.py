"""`custody ledger rotate-key`: replace the key that signs ledger checkpoints.

1. a new Ed25519 key is generated in the HSM under a label derived from the first ledger key's
   (`ledger` -> `ledger-2`, `ledger-3`, …; with a random suffix when the token already holds
   that label, e.g. another installation sharing the token, or a rotation that failed after
   generating its key);
2. one transaction records it (`key.generated`), appends `ledger.key_rotated` naming the old and
   the new verifier keys, and adds the new key to `ledger_keys`, signing from the size just after
   that entry (the first rotation also records the old key, from size 0);
3. the checkpoint of that size (the handover) is signed by the old and the new key: the old key
   signs over the entry that names its successor; from then on the new key signs alone.

Step 3 is also what any checkpointer does on its way past a handover size it has not signed
(custody.ledger.checkpoints), so a crash between 2 and 3 is finished by the next checkpoint.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from custody.ceremonies.authority import Authorise, ungoverned
from custody.ceremonies.errors import CeremonyRefused
from custody.hsm.errors import KeyExists, KeyNotFound
from custody.hsm.keys import Algorithm, Backup, KeyInfo
from custody.keys import repository as key_repo
from custody.keys import service as key_service
from custody.ledger import forks
from custody.ledger import keys as ledger_keys
from custody.ledger import service as ledger
from custody.ledger.checkpoints import (
    LedgerIdentity,
    checkpoint_at,
    make_checkpoint,
    runtime_identity,
)
from custody.ledger.events import EventKind
from custody.ledger.keys import recorded
from custody.ledger.note import verifier_key
from custody.runtime import Runtime


@dataclass(frozen=True)
class Rotation:
    old_label: str
    old_verifier_key: str
    new_label: str
    new_verifier_key: str
    ledger_index: int
    handover_size: int
    handover_note: str


def subject(runtime: Runtime, reason: str) -> dict[str, str]:
    """What a governance proposal for this rotation names (custody.approvals.ceremony_approvals):
    the key it replaces, so an approval cannot be spent on a later rotation."""
    return {"old_key": runtime_identity(runtime).key_label, "reason": reason}


def rotate_ledger_key(
    runtime: Runtime,
    *,
    actor: str,
    reason: str,
    on_fork: forks.ForkHook | None,
    authorise: Authorise = ungoverned,
) -> Rotation:
    old = runtime_identity(runtime)  # the current key, checked against the HSM
    with runtime.db.read() as session:
        rows = recorded(session)
    first = rows[0].label if rows else old.key_label
    generation = len(rows) or 1
    new = _generate(runtime, f"{first}-{generation + 1}")
    index = _record(
        runtime, old, new, generation=generation, actor=actor, reason=reason, authorise=authorise
    )
    # The handover: make_checkpoint stops at the new key's first size and signs it with both.
    make_checkpoint(runtime.db, runtime.token(), runtime_identity(runtime), on_fork=on_fork)
    with runtime.db.read() as session:
        handover = checkpoint_at(session, index + 1)
    if handover is None:  # make_checkpoint signs it or raises; nothing else removes it
        raise CeremonyRefused(f"the handover checkpoint at size {index + 1} was not signed")
    return Rotation(
        old_label=old.key_label,
        old_verifier_key=old.verifier_key,
        new_label=new.label,
        new_verifier_key=verifier_key(old.origin, new.public_key),
        ledger_index=index,
        handover_size=handover.tree_size,
        handover_note=handover.note,
    )


def _generate(runtime: Runtime, label: str) -> KeyInfo:
    """A new key under `label`, or under `label` and a random suffix when the token (or the
    keys table) already has that label: a key already on the token is never adopted."""
    token = runtime.token()
    with runtime.db.read() as session:
        taken = label in {k.label for k in key_repo.keys(session)}
    if not taken:
        try:
            token.get_key(label)
        except KeyNotFound:
            try:
                return token.generate_key(label, Algorithm.ED25519, backup=Backup.NONE)
            except KeyExists:
                pass
    return token.generate_key(
        f"{label}-{secrets.token_hex(3)}", Algorithm.ED25519, backup=Backup.NONE
    )


def _record(
    runtime: Runtime,
    old: LedgerIdentity,
    new: KeyInfo,
    *,
    generation: int,
    actor: str,
    reason: str,
    authorise: Authorise = ungoverned,
) -> int:
    """Key, rotation entry and key rows in one transaction; the rotation entry's index."""
    with runtime.db.write() as session:
        ledger.lock(session)  # serialises with every other writer of the ledger until commit
        rows = recorded(session)
        if (len(rows) or 1) != generation or (rows and rows[-1].label != old.key_label):
            raise CeremonyRefused("another ledger key rotation ran meanwhile; nothing was changed")
        key_service.record_key(
            session, info=new, token=runtime.token_label, backup=Backup.NONE, actor=actor
        )
        data = {
            "old": _described(old.origin, old.key_label, old.public_key),
            "new": _described(old.origin, new.label, new.public_key),
            "reason": reason,
        } | authorise(session)
        entry = ledger.append(session, EventKind.LEDGER_KEY_ROTATED, actor, data)
        if not rows:  # the configured key, which signed everything so far
            ledger_keys.add(
                session,
                generation=0,
                label=old.key_label,
                public_key=old.public_key,
                first_size=0,
                ledger_index=None,
            )
        ledger_keys.add(
            session,
            generation=generation,
            label=new.label,
            public_key=new.public_key,
            first_size=entry.index + 1,
            ledger_index=entry.index,
        )
        return entry.index


def _described(origin: str, label: str, public_key: bytes) -> dict[str, str]:
    return {
        "label": label,
        "public_key": public_key.hex(),
        "verifier_key": verifier_key(origin, public_key),
    }
