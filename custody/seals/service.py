"""Sealing the configuration in the HSM, and checking a seal where signing happens.

A seal is the installation root key's Ed25519 signature over a short statement: the epoch (one
more than the previous seal's), the document's SHA-256 and the previous digest. Every seal is
also a `configuration.sealed` ledger entry, so rolling the seal table back to an older, looser
configuration shows against the ledger (which the HSM-signed checkpoints protect in turn).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.orm import Session

from custody.errors import CustodyError
from custody.hsm.signer import Signer
from custody.ledger import service as ledger
from custody.ledger.canonical import canonical_bytes
from custody.ledger.events import EventKind
from custody.ledger.service import rfc3339
from custody.seals import repository
from custody.seals.document import Document, Scope, changes, current, differences, parse
from custody.store.base import utcnow
from custody.store.models import ConfigurationSeal

STATEMENT_TYPE = "custody.configuration.seal.v1"
MAX_LISTED_CHANGES = 50
_SEALED_HERE = "custody.seals.sealed_here"


class ConfigurationRefused(CustodyError):
    """The configuration the signer is about to use is not the sealed one."""

    status = 503
    title = "Configuration not sealed"
    slug = "configuration-refused"


@dataclass(frozen=True)
class Sealed:
    epoch: int
    digest: str
    changes: list[str]


@dataclass(frozen=True)
class RootKey:
    label: str
    public_key: bytes

    @classmethod
    def on(cls, signer: Signer, label: str) -> RootKey:
        """The root public key as the HSM holds it: never from the database."""
        return cls(label, signer.get_key(label).public_key)


def seal(
    session: Session,
    signer: Signer,
    *,
    key_label: str,
    actor: str,
    reason: str,
    force: bool = False,
) -> Sealed | None:
    """Seal the configuration as the rows say it is now; None when the newest seal already
    says exactly this (nothing to sign, nothing to record).

    Refuses (unless `force`, after people looked) when the seal table is behind the ledger:
    sealing then would bless whatever an insider changed after deleting the newer seals.
    """
    ledger.lock(session)  # one sealer at a time: epochs are consecutive
    document = current(session)
    previous = repository.newest_seal(session)
    if previous is not None and previous.digest == document.digest:
        return None
    previous_epoch = None if previous is None else previous.epoch
    recorded = repository.newest_sealed_entry(session)
    # A seal made earlier in this transaction has its ledger entry still pending: it is newer
    # than what the ledger table shows, and consistent with it.
    recorded_epoch = session.info.get(_SEALED_HERE) or (
        None if recorded is None else recorded.get("epoch")
    )
    if not force and recorded_epoch != previous_epoch:
        raise ConfigurationRefused(
            f"the ledger records configuration seal {recorded_epoch} but the newest stored seal "
            f"is {previous_epoch}: seals were removed; find out why, then `custody config seal "
            "--force --reason ...`"
        )
    epoch = 1 if previous is None else previous.epoch + 1
    now = utcnow()
    statement = canonical_bytes(
        {
            "type": STATEMENT_TYPE,
            "epoch": epoch,
            "digest": document.digest,
            "previous": None if previous is None else previous.digest,
            "sealed_at": rfc3339(now),
        }
    )
    signature = signer.sign_ed25519(key_label, statement)
    session.add(
        ConfigurationSeal(
            epoch=epoch,
            digest=document.digest,
            document=document.canonical,
            statement=statement,
            signature=signature,
            key_label=key_label,
            actor=actor,
            sealed_at=now,
        )
    )
    listed = changes(_document_of(previous), document)
    ledger.append(
        session,
        EventKind.CONFIGURATION_SEALED,
        actor,
        {
            "epoch": epoch,
            "digest": document.digest,
            "previous": None if previous is None else previous.digest,
            "key": key_label,
            "reason": reason,
            "changes": listed[:MAX_LISTED_CHANGES],
            "changes_total": len(listed),
        },
    )
    session.info[_SEALED_HERE] = epoch
    return Sealed(epoch, document.digest, listed)


@dataclass(frozen=True)
class Verified:
    """The newest seal, whose document the rows were found equal to."""

    seal: ConfigurationSeal
    document: Document
    rows: Document


def verify(session: Session, root: RootKey, scope: Scope | None = None) -> Verified:
    """Raise ConfigurationRefused, saying what does not hold, unless the rows are the newest
    sealed state: all of them, or (for a claim) the small sections and the items `scope` names.

    Under governance the newest seal may not be in effect yet (custody.approvals.
    configuration_approvals): that is for the caller to ask next."""
    newest = repository.newest_seal(session)
    recorded = repository.newest_sealed_entry(session)
    if newest is None and recorded is None:
        raise ConfigurationRefused(
            "the configuration has never been sealed: run `custody init` with access to the HSM"
        )
    if newest is None:
        raise ConfigurationRefused(
            f"the ledger records configuration seal {recorded.get('epoch') if recorded else None} "
            "but no seal is stored: the seal table was emptied"
        )
    sealed = sealed_document(newest, root)
    if recorded is None or recorded.get("epoch") != newest.epoch:
        raise ConfigurationRefused(
            f"seal {newest.epoch} is not the newest one the ledger records "
            f"(the ledger's is {None if recorded is None else recorded.get('epoch')}): "
            "the seal table was rolled back or written around the ledger"
        )
    if recorded.get("digest") != newest.digest:
        raise ConfigurationRefused(f"seal {newest.epoch} differs from its ledger entry")
    rows = current(session, scope)
    if scope is None and rows.digest == newest.digest:
        return Verified(newest, sealed, rows)
    found = differences(sealed, rows, whole=scope is None)
    if found or scope is None:
        raise ConfigurationRefused(
            f"the configuration differs from seal {newest.epoch}: {listing(found)}"
        )
    return Verified(newest, sealed, rows)


def listing(found: list[str]) -> str:
    """A few of `found` for one line, and how many more there are."""
    shown = "; ".join(found[:5]) + (f"; and {len(found) - 5} more" if len(found) > 5 else "")
    return shown or "unknown change"


# Sealed documents whose signature verified, parsed, by everything the check read: the signer
# checks the same seal on every claim, and loading, hashing and parsing a large document and an
# Ed25519 verification are the dearest parts of that.
_SealKey = tuple[bytes, int, str, bytes, bytes]
_sealed: dict[_SealKey, Document] = {}
_SEALED_LIMIT = 8
_sealed_lock = threading.Lock()


def sealed_document(seal_row: ConfigurationSeal, root: RootKey) -> Document:
    """The document of `seal_row`, once its root-key signature and digest check out."""
    key = (root.public_key, seal_row.epoch, seal_row.digest, seal_row.statement, seal_row.signature)
    with _sealed_lock:
        cached = _sealed.get(key)
    if cached is not None:
        return cached
    document_bytes = seal_row.document
    _verify_signature(seal_row, root, hashlib.sha256(document_bytes).hexdigest())
    try:
        document = parse(document_bytes)
    except ValueError:
        raise ConfigurationRefused(
            f"seal {seal_row.epoch} holds no configuration document"
        ) from None
    with _sealed_lock:
        if len(_sealed) >= _SEALED_LIMIT:
            _sealed.clear()
        _sealed[key] = document
    return document


def _verify_signature(seal_row: ConfigurationSeal, root: RootKey, document_digest: str) -> None:
    try:
        Ed25519PublicKey.from_public_bytes(root.public_key).verify(
            seal_row.signature, seal_row.statement
        )
    except (InvalidSignature, ValueError):
        raise ConfigurationRefused(
            f"seal {seal_row.epoch} does not verify with the installation root key "
            f"{root.label!r} held in the HSM"
        ) from None
    statement = json.loads(seal_row.statement)
    if (
        not isinstance(statement, dict)
        or statement.get("type") != STATEMENT_TYPE
        or statement.get("epoch") != seal_row.epoch
        or statement.get("digest") != seal_row.digest
        or document_digest != seal_row.digest
    ):
        raise ConfigurationRefused(f"seal {seal_row.epoch} does not match what its key signed")


def _document_of(seal_row: ConfigurationSeal | None) -> Document | None:
    if seal_row is None:
        return None
    try:
        return parse(seal_row.document)
    except ValueError:
        return None
