"""`custody ceremony restore`: a backup's keys unwrapped into one of this installation's tokens
(the main one, or another named by `--token`).

All or nothing: every check that needs no HSM comes first, then every key is unwrapped and
checked on the token, then keys, wallets and ledger entries are written in one transaction. A
failure at any step destroys what the token received and writes no row.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import coincurve
from sqlalchemy.orm import Session

from custody.catalog import chains as catalog
from custody.ceremonies import bitcoin_wallets as bitcoin
from custody.ceremonies import kek as keks
from custody.ceremonies.authority import Authorise, ungoverned
from custody.ceremonies.errors import BackupInvalid, CeremonyRefused, SharesInvalid
from custody.ceremonies.manifest import BackupFolder, KeyEntry, Manifest, unsigned_bytes
from custody.chains import address_from_public_key
from custody.errors import CustodyError
from custody.hsm.keys import Algorithm, KeyInfo, WrappedKey
from custody.keys import repository as keys
from custody.keys import service as key_service
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.runtime import Runtime
from custody.wallets import repository as wallets
from custody.wallets import service as wallet_service

if TYPE_CHECKING:
    from custody.hsm.pkcs11.wrapping import KeyCeremony


@dataclass(frozen=True)
class Restored:
    manifest_sha256: str
    ledger_index: int
    token: str
    keys: list[KeyInfo]
    wallets: list[dict[str, str]]  # name, chain, key, address (and a Bitcoin descriptor)
    shares_used: list[int]
    not_recreated: list[dict[str, str | None]]  # Bitcoin wallets: name (or None), reason


def subject(backup: BackupFolder, token: str) -> dict[str, str]:
    """What a governance proposal for this restore names (custody.approvals.ceremony_approvals)."""
    return {"directory": str(backup.directory), "manifest_sha256": backup.sha256, "token": token}


def restore(
    runtime: Runtime,
    backup: BackupFolder,
    shares: list[str],
    actor: str,
    authorise: Authorise = ungoverned,
    *,
    token: str | None = None,
) -> Restored:
    """`token`: the label of the token to restore into (None: the main one); the keys are
    recorded on it, so their wallets sign there."""
    manifest = backup.manifest
    token = token or runtime.token_label

    # (1) the shares rebuild this backup's KEK (SLIP-39 checksums and digest, then the check
    # value: shares of another backup rebuild another KEK)
    kek, used = keks.combine(
        shares, identifier=manifest.shares.identifier, threshold=manifest.shares.threshold
    )
    if not hmac.compare_digest(keks.check_value(kek), manifest.kek.check_value):
        raise SharesInvalid(
            "the shares rebuild a KEK whose check value is not the one in manifest.json: "
            "they belong to another backup, or the manifest's check value was changed"
        )

    # (2) nothing in the manifest changed since the backup (its MAC under the KEK verifies);
    # the blobs' digests are in it and were checked when the folder was read
    expected = keks.manifest_mac(kek, unsigned_bytes(backup.body))
    if not hmac.compare_digest(expected, manifest.mac):
        raise BackupInvalid(
            "manifest.json was changed after the backup: its authentication code under the "
            "KEK does not verify"
        )

    # (3) this installation can take every key and wallet; each Bitcoin wallet's descriptor
    # and address derive from its owners and threshold
    with runtime.db.read() as session:
        _require_room(session, manifest)
        wallet_plan = bitcoin.plan(session, manifest)

    # (4) on the token: each key unwrapped and checked (protection, curve, and a signature
    # that verifies in software against the manifest's public key); (5) the records
    with runtime.key_ceremony(kek, backup=False, token_label=token) as ceremony:
        try:
            infos = [
                ceremony.restore(WrappedKey(info=_info(entry), blob=backup.blobs[entry.label]))
                for entry in manifest.keys
            ]
            with runtime.db.write() as session:
                approvals = authorise(session)
                index, made = _record(
                    session, backup, infos, token, used, actor, approvals, wallet_plan
                )
        except BaseException as exc:
            _discard(ceremony, exc)
            raise
    return Restored(backup.sha256, index, token, infos, made, used, wallet_plan.not_recreated)


def _info(entry: KeyEntry) -> KeyInfo:
    return KeyInfo(
        label=entry.label,
        algorithm=Algorithm(entry.algorithm),
        key_id=entry.key_id,
        public_key=bytes.fromhex(entry.public_key),
    )


def _require_room(session: Session, manifest: Manifest) -> None:
    """No key label, public key or wallet name is taken; each wallet's chain is known here
    with the same chain id; each address derives from its key's public key."""
    known = {key.label: key for key in keys.keys(session)}
    by_public = {key.public_key: key.label for key in known.values()}
    for entry in manifest.keys:
        if entry.label in known:
            raise CeremonyRefused(
                f"key {entry.label!r} already exists in this installation: restore into an "
                "installation that does not hold it"
            )
        if entry.public_key in by_public:
            raise CeremonyRefused(
                f"the key of {entry.label!r} is already in this installation, as "
                f"{by_public[entry.public_key]!r}"
            )
        try:
            coincurve.PublicKey(bytes.fromhex(entry.public_key))
        except ValueError:
            raise BackupInvalid(f"the public key of {entry.label!r} is not on secp256k1") from None
        for wallet in entry.wallets:
            _require_wallet_room(session, entry, wallet.name, wallet.chain, wallet.evm_chain_id)
            derived = str(address_from_public_key(bytes.fromhex(entry.public_key)))
            if derived != wallet.address:
                raise BackupInvalid(
                    f"wallet {wallet.name!r}: address {wallet.address} does not derive from the "
                    f"public key of {entry.label!r}"
                )


def _require_wallet_room(
    session: Session, entry: KeyEntry, name: str, chain_name: str, chain_id: int
) -> None:
    if wallets.find_wallet(session, name) is not None:
        raise CeremonyRefused(f"wallet {name!r} already exists in this installation")
    try:
        chain = catalog.chain_by_name(session, chain_name)
    except CustodyError:
        raise CeremonyRefused(
            f"wallet {name!r} is on chain {chain_name!r}, which this installation does not "
            f"know: add it first (custody chains add {chain_name} --evm-chain-id {chain_id})"
        ) from None
    if chain.evm_chain_id != chain_id:
        raise CeremonyRefused(
            f"wallet {name!r}: chain {chain_name!r} has chain id {chain.evm_chain_id} here, "
            f"{chain_id} in the backup (key {entry.label!r})"
        )


def _record(  # noqa: PLR0917  (private: one call site)
    session: Session,
    backup: BackupFolder,
    infos: list[KeyInfo],
    token: str,
    used: list[int],
    actor: str,
    approvals: dict[str, Any],
    wallet_plan: bitcoin.Plan,
) -> tuple[int, list[dict[str, str]]]:
    manifest = backup.manifest
    entry = ledger.append(
        session,
        EventKind.CEREMONY_RESTORE,
        actor,
        {
            "manifest_sha256": backup.sha256,
            "directory": str(backup.directory),
            "backup_created_at": manifest.created_at,
            "source": manifest.source.model_dump(mode="json"),
            "token": token,
            "shares_used": used,
            "keys": [info.label for info in infos],
            "wallets": [w.name for key in manifest.keys for w in key.wallets]
            + [w.name for w in wallet_plan.make],
            "wallets_not_recreated": wallet_plan.not_recreated,
        }
        | approvals,
    )
    made: list[dict[str, str]] = []
    for info, key_entry in zip(infos, manifest.keys, strict=True):
        key = key_service.record_restored_key(
            session, info=info, token=token, manifest_sha256=backup.sha256, actor=actor
        )
        key_service.record_backup(
            session, key, manifest_sha256=backup.sha256, ledger_index=entry.index
        )
        for wallet_entry in key_entry.wallets:
            wallet = wallet_service.create_wallet(
                session,
                name=wallet_entry.name,
                chain_name=wallet_entry.chain,
                key_label=info.label,
                actor=actor,
            )
            if wallet.address != wallet_entry.address:  # derived again from the stored key
                raise BackupInvalid(f"wallet {wallet.name!r} would get another address")
            made.append(
                {
                    "name": wallet.name,
                    "chain": wallet_entry.chain,
                    "key": info.label,
                    "address": wallet.address,
                }
            )
    made += [bitcoin.recreate(session, wallet, actor) for wallet in wallet_plan.make]
    return entry.index, made


def _discard(ceremony: KeyCeremony, cause: BaseException) -> None:
    """Destroy what the token received; if even that fails, say both things in one line."""
    try:
        ceremony.discard()
    except CustodyError as failed:
        first = cause.message if isinstance(cause, CustodyError) else repr(cause)
        raise CeremonyRefused(f"{first}; removing the keys it imported failed too: {failed}") from (
            cause
        )
