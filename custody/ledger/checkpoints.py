"""Signing checkpoints of the committed tree with the ledger key held in the HSM."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from custody.errors import CustodyError, NotFound
from custody.hsm.signer import Signer
from custody.ledger import forks, service
from custody.ledger.consistency import provable_root
from custody.ledger.keys import SigningKey, keys_at, recorded, schedule, signing_keys
from custody.ledger.note import (
    SIGNATURE_PREFIX,
    SignedCheckpoint,
    checkpoint_body,
    cosign_checkpoint,
    key_id,
    verifier_key,
)
from custody.ledger.verify import KeySchedule, VerifierKey, parse_verifier_key
from custody.runtime import Runtime
from custody.store.base import utcnow
from custody.store.database import Database
from custody.store.models import LedgerCheckpoint


class CheckpointSignatureInvalid(CustodyError):
    status = 500
    title = "Checkpoint signature invalid"
    slug = "checkpoint-signature-invalid"


class LedgerKeyMismatch(CustodyError):
    status = 500
    title = "Ledger key mismatch"
    slug = "ledger-key-mismatch"


@dataclass(frozen=True)
class LedgerIdentity:
    """Who signs checkpoints now: the origin line (also the note key name) and the current HSM
    key. Which key signs which size is read from the database at each checkpoint
    (custody.ledger.keys), so an identity made before a rotation still signs with the new key."""

    origin: str
    key_label: str
    public_key: bytes

    @property
    def first(self) -> SigningKey:
        """The only key, when no rotation is recorded (then this identity is the configured
        key: runtime_identity reads the recorded current key once there is one)."""
        return SigningKey(self.key_label, self.public_key, 0)

    @property
    def verifier_key(self) -> str:
        return verifier_key(self.origin, self.public_key)

    @property
    def verifier(self) -> VerifierKey:
        return parse_verifier_key(self.verifier_key)


def identity(signer: Signer, origin: str, key_label: str) -> LedgerIdentity:
    return LedgerIdentity(origin, key_label, signer.get_key(key_label).public_key)


def runtime_identity(runtime: Runtime) -> LedgerIdentity:
    """The current checkpoint signer of this installation: origin, key label and public key from
    the HSM. The label is CUSTODY_LEDGER_KEY_LABEL until a rotation records another."""
    settings = runtime.settings
    with runtime.db.read() as session:
        rows = recorded(session)
    if not rows:
        return identity(runtime.token(), settings.ledger_origin, settings.ledger_key_label)
    current = rows[-1]
    ident = identity(runtime.token(), settings.ledger_origin, current.label)
    if ident.public_key.hex() != current.public_key:
        raise LedgerKeyMismatch(
            f"the HSM's key {current.label!r} is not the ledger key recorded for it"
        )
    return ident


def runtime_schedule(runtime: Runtime) -> KeySchedule:
    """Every ledger key with the sizes it signs; the current one checked against the HSM."""
    ident = runtime_identity(runtime)
    with runtime.db.read() as session:
        return schedule(ident.origin, signing_keys(session, ident.first))


def make_checkpoint(
    db: Database, signer: Signer, ident: LedgerIdentity, *, on_fork: forks.ForkHook | None
) -> LedgerCheckpoint | None:
    """Sign the committed tree if it grew since the last checkpoint; None when nothing is new.

    The tree must first be proven to extend the last signed checkpoint (custody.ledger.
    consistency): a forked tree never reaches the HSM; ForkDetected is raised and recorded
    (custody.ledger.forks), with `on_fork` (the freeze, custody.freezes.breakers) in the same
    transaction. Several processes may race here: the tree size is the primary key, and a root
    for a given size never changes, so the loser's identical insert is dropped.
    """
    made = None
    while (step := _sign_next(db, signer, ident, on_fork)) is not None:
        made = step
    return made


def _sign_next(
    db: Database, signer: Signer, ident: LedgerIdentity, on_fork: forks.ForkHook | None
) -> LedgerCheckpoint | None:
    """One checkpoint: of the head, or of the next handover size on the way to it (so every
    rotation gets its checkpoint signed by both keys before the new key signs alone)."""
    try:
        found = _tree_to_sign(db, ident)
    except forks.ForkDetected as fork:
        forks.record(db, fork, on_fork)
        raise
    if found is None:
        return None
    size, root_hash, keys = found
    signed = cosign_checkpoint(
        ident.origin,
        size,
        root_hash,
        key_name=ident.origin,
        signers=[(k.public_key, _signing(signer, k.label)) for k in keys],
    )
    _check_own_signatures(signed, keys)
    with db.write() as session:
        values = {
            "tree_size": size,
            "root_hash": root_hash,
            "note": signed.note,
            "created_at": utcnow(),
        }
        insert = pg_insert if db.url.startswith("postgresql") else sqlite_insert
        session.execute(insert(LedgerCheckpoint).values(**values).on_conflict_do_nothing())
        return session.execute(
            select(LedgerCheckpoint).where(LedgerCheckpoint.tree_size == size)
        ).scalar_one()


def _signing(signer: Signer, label: str) -> Callable[[bytes], bytes]:
    return lambda body: signer.sign_ed25519(label, body)


def _tree_to_sign(
    db: Database, ident: LedgerIdentity
) -> tuple[int, bytes, list[SigningKey]] | None:
    with db.read() as session:
        # The checkpoint before the head: a checkpoint committed in between could otherwise
        # look larger than the log (PostgreSQL reads each statement at its own snapshot).
        last = latest_checkpoint(session)
        size = service.size(session)
        if size == 0 or (last is not None and last.tree_size == size):
            return None
        # After the head: a rotation commits its key row with its entry, so a head that holds
        # the entry shows the row.
        keys = signing_keys(session, ident.first)
        signed = 0 if last is None else last.tree_size
        target = min((k.first_size for k in keys if signed < k.first_size <= size), default=size)
        root = provable_root(session, last, schedule(ident.origin, keys), target)
        return target, root, keys_at(keys, target)


def _check_own_signatures(signed: SignedCheckpoint, keys: list[SigningKey]) -> None:
    """A checkpoint whose signatures do not verify must never be published (fail closed)."""
    body = checkpoint_body(signed.origin, signed.tree_size, signed.root_hash).encode()
    stamps = [
        base64.b64decode(line.rsplit(" ", 1)[1])
        for line in signed.note.split("\n\n", 1)[1].splitlines()
        if line.startswith(SIGNATURE_PREFIX)
    ]
    if len(stamps) != len(keys):
        raise CheckpointSignatureInvalid("a checkpoint lacks a signature")
    for key, stamp in zip(keys, stamps, strict=True):
        try:
            if stamp[:4] != key_id(signed.origin, key.public_key):
                raise InvalidSignature
            Ed25519PublicKey.from_public_bytes(key.public_key).verify(stamp[4:], body)
        except InvalidSignature:
            raise CheckpointSignatureInvalid(
                f"the HSM's checkpoint signature by {key.label!r} does not verify"
            ) from None


def latest_checkpoint(session: Session) -> LedgerCheckpoint | None:
    return session.execute(
        select(LedgerCheckpoint).order_by(LedgerCheckpoint.tree_size.desc()).limit(1)
    ).scalar_one_or_none()


def checkpoint_at(session: Session, tree_size: int) -> LedgerCheckpoint | None:
    return session.execute(
        select(LedgerCheckpoint).where(LedgerCheckpoint.tree_size == tree_size)
    ).scalar_one_or_none()


def checkpoint_at_or_before(session: Session, tree_size: int) -> LedgerCheckpoint:
    found = session.execute(
        select(LedgerCheckpoint)
        .where(LedgerCheckpoint.tree_size <= tree_size)
        .order_by(LedgerCheckpoint.tree_size.desc())
        .limit(1)
    ).scalar_one_or_none()
    if found is None:
        raise NotFound("no checkpoint yet; one is signed shortly after entries arrive")
    return found
