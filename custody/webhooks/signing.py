"""Signing webhook bodies with the service's Ed25519 key held in the HSM (label `webhooks`).

Clients verify with the public key alone: the server keeps no shared secret (invariant 9).
The signed message is `b"<unix seconds>." + body`, so a captured body cannot be replayed later
under a fresh timestamp.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.exc import IntegrityError

from custody.hsm.errors import KeyExists, KeyNotFound
from custody.hsm.keys import Algorithm, Backup, KeyInfo
from custody.keys import repository as key_repo
from custody.keys import service as key_service
from custody.runtime import Runtime

KEY_LABEL = "webhooks"
TIMESTAMP_HEADER = "Custody-Timestamp"
SIGNATURE_HEADER = "Custody-Signature"
KEY_ID_HEADER = "Custody-Key-Id"

_ensure_lock = threading.Lock()


@dataclass(frozen=True)
class WebhookKey:
    public_key: bytes

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.public_key).hexdigest()[:16]

    @property
    def pem(self) -> str:
        key = Ed25519PublicKey.from_public_bytes(self.public_key)
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def as_dict(self) -> dict[str, str]:
        return {
            "algorithm": "ed25519",
            "key_id": self.key_id,
            "public_key": self.public_key.hex(),
            "public_key_pem": self.pem,
        }


def signed_message(timestamp: int, body: bytes) -> bytes:
    return f"{timestamp}.".encode() + body


def ensure_key(runtime: Runtime, actor: str = "system:webhooks") -> tuple[KeyInfo, bool]:
    """The webhook key, generated in the HSM (and recorded) on first use; True if made now.

    `custody init` calls this; installations set up before webhooks existed get the key lazily.
    """
    with _ensure_lock:
        token = runtime.token()
        created = False
        try:
            info = token.get_key(KEY_LABEL)
        except KeyNotFound:
            try:
                info = token.generate_key(KEY_LABEL, Algorithm.ED25519)
                created = True
            except KeyExists:  # another process made it in between
                info = token.get_key(KEY_LABEL)
        with runtime.db.read() as session:
            known = KEY_LABEL in {k.label for k in key_repo.keys(session)}
        if not known:
            try:
                with runtime.db.write() as session:
                    key_service.record_key(
                        session,
                        info=info,
                        token=runtime.settings.hsm_token or "custody-dev",
                        backup=Backup.NONE,  # an Ed25519 service key
                        actor=actor,
                    )
            except IntegrityError:  # recorded concurrently by another process
                pass
            created = True
        return info, created


def public_key(runtime: Runtime) -> WebhookKey:
    info, _ = ensure_key(runtime)
    return WebhookKey(info.public_key)


class BodySigner:
    """Signs bodies for delivery; resolves the key once per process."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._key: WebhookKey | None = None

    @property
    def key(self) -> WebhookKey:
        if self._key is None:
            self._key = public_key(self._runtime)
        return self._key

    def headers(self, body: bytes, timestamp: int) -> dict[str, str]:
        key = self.key
        signature = self._runtime.token().sign_ed25519(KEY_LABEL, signed_message(timestamp, body))
        return {
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: "ed25519=" + base64.b64encode(signature).decode(),
            KEY_ID_HEADER: key.key_id,
        }
