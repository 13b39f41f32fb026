"""Signing checkpoints of the committed tree with the ledger key held in the HSM."""

from __future__ import annotations

import base64
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
from custody.ledger.note import SignedCheckpoint, checkpoint_body, sign_checkpoint, verifier_key
from custody.ledger.verify import VerifierKey, parse_verifier_key
from custody.runtime import Runtime
from custody.store.base import utcnow
from custody.store.database import Database
from custody.store.models import LedgerCheckpoint


class CheckpointSignatureInvalid(CustodyError):
    status = 500
    title = "Checkpoint signature invalid"
    slug = "checkpoint-signature-invalid"


@dataclass(frozen=True)
class LedgerIdentity:
    """Who signs checkpoints: the origin line, the note key name and the HSM key."""

    origin: str
    key_label: str
    public_key: bytes

    @property
    def verifier_key(self) -> str:
        return verifier_key(self.origin, self.public_key)

    @property
    def verifier(self) -> VerifierKey:
        return parse_verifier_key(self.verifier_key)


def identity(signer: Signer, origin: str, key_label: str) -> LedgerIdentity:
    return LedgerIdentity(origin, key_label, signer.get_key(key_label).public_key)


def runtime_identity(runtime: Runtime) -> LedgerIdentity:
    """The checkpoint signer of this installation: origin, key label and public key from the HSM."""
    settings = runtime.settings
    return identity(runtime.token(), settings.ledger_origin, settings.ledger_key_label)


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
    try:
        found = _tree_to_sign(db, ident)
    except forks.ForkDetected as fork:
        forks.record(db, fork, on_fork)
        raise
    if found is None:
        return None
    size, root_hash = found
    signed = sign_checkpoint(
        ident.origin,
        size,
        root_hash,
        key_name=ident.origin,
        public_key=ident.public_key,
        sign=lambda body: signer.sign_ed25519(ident.key_label, body),
    )
    _check_own_signature(signed, ident)
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


def _tree_to_sign(db: Database, ident: LedgerIdentity) -> tuple[int, bytes] | None:
    with db.read() as session:
        # The checkpoint before the head: a checkpoint committed in between could otherwise
        # look larger than the log (PostgreSQL reads each statement at its own snapshot).
        last = latest_checkpoint(session)
        size = service.size(session)
        if size == 0 or (last is not None and last.tree_size == size):
            return None
        return size, provable_root(session, last, ident.verifier, size)


def _check_own_signature(signed: SignedCheckpoint, ident: LedgerIdentity) -> None:
    """A checkpoint whose signature does not verify must never be published (fail closed)."""
    body = checkpoint_body(signed.origin, signed.tree_size, signed.root_hash).encode()
    stamp = signed.note.rsplit(" ", 1)[1].strip()
    signature = base64.b64decode(stamp)[4:]
    try:
        Ed25519PublicKey.from_public_bytes(ident.public_key).verify(signature, body)
    except InvalidSignature:
        raise CheckpointSignatureInvalid("the HSM's checkpoint signature does not verify") from None


def latest_checkpoint(session: Session) -> LedgerCheckpoint | None:
    return session.execute(
        select(LedgerCheckpoint).order_by(LedgerCheckpoint.tree_size.desc()).limit(1)
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
