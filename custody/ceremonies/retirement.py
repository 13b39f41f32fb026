"""`custody keys retire LABEL`: a wallet key's wallets stop signing, and the key is destroyed.

1. the checks, in a read transaction (so the operator is asked to confirm only what can run):
   a secp256k1 wallet key of this installation, no request of its wallets `approved` or
   `signing` (one would be signed, or fail, under the operator's feet), and in a backup unless
   the operator says that losing it for good is intended;
2. one transaction, under the ledger lock (which intake and the signer's claim also hold), checks
   again, marks the key retired and appends `key.retired`: from its commit on, intake refuses
   requests on its wallets and the signer fails any that reach it (custody.signing.pipeline);
3. only then is the key pair destroyed on the token. Destroying first could lose a key whose
   record then failed to commit; this order can at worst leave a retired key on the token, which
   signs nothing, and running `custody keys retire` again finishes the destruction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from custody.ceremonies.authority import Authorise, ungoverned
from custody.ceremonies.errors import CeremonyRefused
from custody.hsm.errors import KeyNotFound
from custody.hsm.keys import Algorithm
from custody.hsm.pkcs11 import Pkcs11Token
from custody.keys import repository as keys
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.ledger.service import rfc3339
from custody.requests import repository as requests
from custody.store.base import utcnow
from custody.store.models import Key
from custody.wallets import repository as wallets


@dataclass(frozen=True)
class Retirement:
    label: str
    algorithm: str
    token: str
    key_id: str
    public_key: str
    wallets: list[dict[str, str]]  # name, chain, address
    last_backup: str | None  # the newest backup's manifest digest
    retired_at: str | None  # set once recorded (or when it was, for a retirement to finish)

    def subject(self) -> dict[str, str | None]:
        """What a governance proposal to retire this key names: the key, and the backup that
        holds it (None: none does, and it is gone for good once retired)."""
        return {"label": self.label, "public_key": self.public_key, "last_backup": self.last_backup}


def plan(session: Session, label: str, *, force_no_backup: bool) -> Retirement:
    """What retiring `label` would do, or why it may not."""
    key = keys.key_by_label(session, label)
    on_key = [(w, c) for w, c, k in wallets.wallets(session) if k.id == key.id]
    latest = keys.latest_backups(session).get(key.id)
    found = Retirement(
        label=key.label,
        algorithm=key.algorithm,
        token=key.token,
        key_id=key.key_id,
        public_key=key.public_key,
        wallets=[{"name": w.name, "chain": c.name, "address": w.address} for w, c in on_key],
        last_backup=latest.manifest_sha256 if latest else None,
        retired_at=rfc3339(key.retired_at) if key.retired_at else None,
    )
    if key.retired_at is not None:
        return found  # retired already: what is left is destroying it, if that failed
    if key.algorithm != Algorithm.SECP256K1:
        raise CeremonyRefused(
            f"key {label!r} is a {key.algorithm} service key, not a wallet key: service keys "
            "are replaced, not retired (the ledger key: custody ledger rotate-key)"
        )
    live = requests.signable_on_wallets(session, [w.id for w, _ in on_key])
    if live:
        shown = ", ".join(f"{r.id} ({r.status})" for r in live[:5])
        raise CeremonyRefused(
            f"key {label!r} still has {len(live)} request(s) approved or being signed: {shown}; "
            "let them finish (or cancel them), then retire the key"
        )
    if latest is None and not force_no_backup:
        raise CeremonyRefused(
            f"no backup holds key {label!r}: destroying it loses it for good. Back it up first "
            "(custody ceremony backup), or, once its wallets hold nothing, retire it with "
            "--force-no-backup"
        )
    return found


def record(
    session: Session,
    retirement: Retirement,
    actor: str,
    *,
    force_no_backup: bool,
    authorise: Authorise = ungoverned,
) -> tuple[Retirement, int]:
    """Mark the key retired with its `key.retired` entry; the retirement and the entry's index."""
    ledger.lock(session)  # serialises with intake and the signer's claims until commit
    again = plan(session, retirement.label, force_no_backup=force_no_backup)
    if again.retired_at is not None:
        raise CeremonyRefused(f"key {retirement.label!r} was retired meanwhile")
    if again != retirement:
        raise CeremonyRefused(f"key {retirement.label!r} changed meanwhile; nothing was done")
    approvals = authorise(session)
    key: Key = keys.key_by_label(session, retirement.label)
    key.retired_at = utcnow()
    session.flush()  # a configuration change: the commit seals it (custody.seals.hooks)
    entry = ledger.append(
        session,
        EventKind.KEY_RETIRED,
        actor,
        {
            "label": retirement.label,
            "algorithm": retirement.algorithm,
            "token": retirement.token,
            "key_id": retirement.key_id,
            "public_key": retirement.public_key,
            "wallets": retirement.wallets,
            "last_backup": retirement.last_backup,
        }
        | approvals,
    )
    return replace(retirement, retired_at=rfc3339(key.retired_at)), entry.index


def destroy(token: Pkcs11Token, retirement: Retirement) -> bool:
    """Destroy the retired key pair on the token; False when it is not there (any more)."""
    try:
        on_token = token.get_key(retirement.label)
    except KeyNotFound:
        return False
    if (on_token.public_key.hex(), on_token.key_id) != (retirement.public_key, retirement.key_id):
        raise CeremonyRefused(
            f"the key labelled {retirement.label!r} on the token is not the key custody "
            "recorded (public key or CKA_ID differ): not destroying it; investigate"
        )
    token.destroy_key(retirement.label)
    return True
