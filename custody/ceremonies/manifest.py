"""The backup folder: `manifest.json` and `keys/<label>.wrapped`, written and read back.

```
DIR/
  manifest.json          what is in the backup (below), authenticated under the KEK
  keys/<label>.wrapped   one key wrapped with CKM_AES_KEY_WRAP_PAD (RFC 5649) under the KEK
```

The manifest is JSON (sorted keys, two-space indent). Its SHA-256 over the file's exact bytes is
what the `ceremony.backup` ledger entry records. Its `mac` field is HMAC-SHA256 over the RFC 8785
canonical form of every other field, under a key derived from the KEK (custody.ceremonies.kek):
only someone who holds the shares can check it, and only they could have made it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from custody.ceremonies.errors import BackupInvalid, CeremonyRefused
from custody.hsm.keys import validate_label
from custody.ledger.canonical import canonical_bytes

FORMAT = "custody.backup.v1"
MANIFEST = "manifest.json"
KEYS_DIR = "keys"
_HEX = r"^[0-9a-f]+$"
# Wrapped secp256k1 keys are 72 bytes on SoftHSM; anything far larger is not a wrapped key.
MAX_BLOB_BYTES = 4096
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
CUSTODIAN_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,64}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class WalletEntry(_Model):
    name: str = Field(min_length=1, max_length=64)
    chain: str = Field(min_length=1, max_length=32)
    evm_chain_id: int = Field(ge=1)
    address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")


class BitcoinOwner(_Model):
    """One key of a Bitcoin wallet's descriptor, in the descriptor's order: a key of this
    installation (`label`) or an external cosigner's (`label` null)."""

    label: str | None
    public_key: str = Field(pattern=_HEX, min_length=66, max_length=66)  # compressed

    @field_validator("label")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        return None if value is None else validate_label(value)


class BitcoinWalletEntry(_Model):
    """What `wallets create` needs to make the wallet again, and what it must then give."""

    name: str = Field(min_length=1, max_length=64)
    chain: str = Field(min_length=1, max_length=32)
    address: str = Field(min_length=14, max_length=90)
    descriptor: str = Field(min_length=1, max_length=2048)
    threshold: int | None = Field(ge=1)  # None: P2WPKH over its one owner
    owners: tuple[BitcoinOwner, ...] = Field(min_length=1)


class KeyEntry(_Model):
    label: str
    algorithm: Literal["secp256k1"]
    key_id: str = Field(pattern=_HEX, min_length=2, max_length=64)
    public_key: str = Field(pattern=_HEX, min_length=130, max_length=130)
    blob: str
    blob_sha256: str = Field(pattern=_HEX, min_length=64, max_length=64)
    wallets: tuple[WalletEntry, ...]

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        return validate_label(value)

    @model_validator(mode="after")
    def _blob_named_by_label(self) -> KeyEntry:
        # The blob's path is fixed by the label, so no manifest can point outside the folder.
        if self.blob != blob_path(self.label):
            raise ValueError(f"blob of key {self.label!r} must be {blob_path(self.label)!r}")
        return self


class NotIncluded(_Model):
    label: str
    algorithm: str
    reason: str


class Custodian(_Model):
    share: int = Field(ge=1, le=16)
    name: str | None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not CUSTODIAN_NAME.fullmatch(value):
            raise ValueError("a custodian's name is 1-64 printable characters")
        return value


class Shares(_Model):
    scheme: Literal["slip39"]
    identifier: int = Field(ge=0, lt=2**15)
    threshold: int = Field(ge=1, le=16)
    count: int = Field(ge=1, le=16)


class Kek(_Model):
    algorithm: Literal["AES-256"]
    check_method: Literal["aes-cmac-zero-block-40"]
    check_value: str = Field(pattern=_HEX, min_length=10, max_length=10)


class Source(_Model):
    """The installation the keys were backed up from."""

    ledger_origin: str
    token: str
    ledger_size: int = Field(ge=0)


class Manifest(_Model):
    format: Literal["custody.backup.v1"]
    created_at: str
    source: Source
    custodians: tuple[Custodian, ...]
    shares: Shares
    kek: Kek
    wrapping: Literal["CKM_AES_KEY_WRAP_PAD"]
    keys: tuple[KeyEntry, ...]
    not_included: tuple[NotIncluded, ...]
    # Absent in manifests written before backups recorded Bitcoin wallets: their restore
    # cannot make those wallets again (custody.ceremonies.restore says so).
    bitcoin_wallets: tuple[BitcoinWalletEntry, ...] | None = None
    mac: str = Field(pattern=_HEX, min_length=64, max_length=64)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        labels = [key.label for key in self.keys]
        if len(set(labels)) != len(labels):
            raise ValueError("a key label appears twice")
        wallets = [wallet.name for key in self.keys for wallet in key.wallets]
        wallets += [wallet.name for wallet in self.bitcoin_wallets or ()]
        if len(set(wallets)) != len(wallets):
            raise ValueError("a wallet name appears twice")
        if self.shares.threshold > self.shares.count:
            raise ValueError("the share threshold exceeds the share count")
        if sorted(c.share for c in self.custodians) != list(range(1, self.shares.count + 1)):
            raise ValueError("custodians must name shares 1 to the share count, once each")
        return self


def parse(data: bytes) -> Manifest:
    """Strict: JSON types as they are (a number in quotes is not a number)."""
    return Manifest.model_validate_json(data)


def blob_path(label: str) -> str:
    return f"{KEYS_DIR}/{label}.wrapped"


def unsigned_bytes(body: dict[str, Any]) -> bytes:
    """What the manifest's `mac` covers: every field but `mac`, RFC 8785 canonical."""
    return canonical_bytes({name: value for name, value in body.items() if name != "mac"})


def render(body: dict[str, Any]) -> bytes:
    return (json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- writing -------------------------------------------------------------------------------------


def check_target(directory: Path) -> None:
    """A backup goes into a new folder, or an empty one, whose parent exists."""
    if directory.exists():
        if not directory.is_dir():
            raise CeremonyRefused(f"{directory} exists and is not a folder")
        if any(directory.iterdir()):
            raise CeremonyRefused(f"{directory} is not empty: a backup goes into a new folder")
    elif not directory.parent.is_dir():
        raise CeremonyRefused(f"{directory.parent} does not exist")


def write(directory: Path, manifest: bytes, blobs: dict[str, bytes]) -> None:
    """Write the folder complete or not at all: into a hidden sibling, then renamed into place.

    Files are 0600 and folders 0700: the blobs are useless without a quorum of shares, but
    the manifest names keys, wallets and custodians."""
    check_target(directory)
    staging = directory.parent / f".{directory.name}.{secrets.token_hex(4)}.partial"
    try:
        (staging / KEYS_DIR).mkdir(mode=0o700, parents=True)
        staging.chmod(0o700)
        for label, blob in blobs.items():
            _write_private(staging / blob_path(label), blob)
        _write_private(staging / MANIFEST, manifest)
        if directory.exists():
            directory.rmdir()  # empty, checked above
        staging.rename(directory)
        _fsync_dir(directory.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def remove(directory: Path) -> None:
    """Take back a folder this process wrote (its ledger entry could not be recorded)."""
    shutil.rmtree(directory, ignore_errors=True)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupFolder:
    """A backup folder as read: the manifest, its exact bytes and parsed body, and the blobs."""

    directory: Path
    manifest: Manifest
    body: dict[str, Any]
    sha256: str
    blobs: dict[str, bytes]


def read_manifest(directory: Path) -> tuple[Manifest, dict[str, Any], str]:
    """The manifest, its JSON body and its SHA-256; BackupInvalid naming what is wrong."""
    path = directory / MANIFEST
    if not directory.is_dir():
        raise BackupInvalid(f"{directory} is not a folder")
    if not path.is_file():
        raise BackupInvalid(f"{path} is missing: {directory} is not a backup folder")
    data = path.read_bytes()
    if len(data) > MAX_MANIFEST_BYTES:
        raise BackupInvalid(f"{path} is larger than any manifest custody writes")
    try:
        body = json.loads(data)
    except ValueError:
        raise BackupInvalid(f"{path} is not valid JSON") from None
    if not isinstance(body, dict):
        raise BackupInvalid(f"{path} is not a JSON object")
    if body.get("format") != FORMAT:
        raise BackupInvalid(f"{path} has format {body.get('format')!r}, expected {FORMAT!r}")
    try:
        manifest = parse(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "manifest"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise BackupInvalid(f"{path}: {where}: {message}") from None
    return manifest, body, sha256_hex(data)


def read_blobs(directory: Path, manifest: Manifest) -> tuple[dict[str, bytes], list[str]]:
    """The blobs whose SHA-256 matches the manifest, and one problem line for each that does
    not (missing, too large, or changed)."""
    blobs: dict[str, bytes] = {}
    problems: list[str] = []
    for key in manifest.keys:
        path = directory / key.blob
        if not path.is_file():
            problems.append(f"{key.blob} is missing (key {key.label!r})")
            continue
        if path.stat().st_size > MAX_BLOB_BYTES:
            problems.append(f"{key.blob} is larger than any wrapped key (key {key.label!r})")
            continue
        blob = path.read_bytes()
        if sha256_hex(blob) != key.blob_sha256:
            problems.append(
                f"{key.blob} does not match its SHA-256 in the manifest: it was changed or "
                f"damaged (key {key.label!r})"
            )
            continue
        blobs[key.label] = blob
    return blobs, problems


def open_folder(directory: Path) -> BackupFolder:
    """Read a backup folder for a restore: refuse at the first thing that is not as written."""
    manifest, body, digest = read_manifest(directory)
    blobs, problems = read_blobs(directory, manifest)
    if problems:
        raise BackupInvalid(problems[0])
    return BackupFolder(directory, manifest, body, digest, blobs)
