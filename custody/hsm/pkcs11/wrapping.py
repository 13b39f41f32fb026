"""A key ceremony's own session on a token: keys wrapped under a KEK, or unwrapped from a backup.

The key-encryption key (KEK) is a *session object* of this session: it exists only while the
ceremony runs, and closing the session (or the process ending, however it ends) destroys it, so
no KEK lingers on the token after a ceremony, not even after a crash.

Backup needs the KEK to be CKA_TRUSTED, because backup-able keys are CKA_WRAP_WITH_TRUSTED, and
only the security officer (SO) may set CKA_TRUSTED. Login state belongs to the application, not
to one session, and PKCS#11 allows one kind of login at a time: so the SO logs in on this
session, imports the wrap-only KEK, logs out, and the user logs in on the same session to wrap.
The KEK stays because it is a public object (the SO cannot make private ones) and session objects
live as long as their session. A process already logged in as the user cannot log in as the SO
(CKR_USER_ANOTHER_ALREADY_LOGGED_IN): a backup ceremony opens the token before anything else.

Restore needs no SO: unwrapping requires no trusted key, so the user imports an unwrap-only KEK.
Every restored key is checked before it counts: the token must report the protection of a
backup-able key, and the key must sign a random digest that verifies (in software) against the
public key the backup recorded. What a failed restore created is destroyed again.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from typing import Any

import PyKCS11
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from custody.hsm.ecdsa import normalise
from custody.hsm.errors import HsmError, KeyExists, KeyNotFound, PinIncorrect
from custody.hsm.keys import (
    SECP256K1_OID,
    Algorithm,
    Backup,
    KeyInfo,
    WrappedKey,
    algorithm_from_ec_params,
    public_key_from_ec_point,
    validate_label,
)
from custody.hsm.pkcs11 import templates
from custody.hsm.pkcs11.library import Library, hsm_error, library
from custody.hsm.pkcs11.slots import find_slot

_KEY_WRAP_PAD = PyKCS11.Mechanism(PyKCS11.CKM_AES_KEY_WRAP_PAD, None)
_CHECK_LABEL = "custody-ceremony-check"
_SO_PIN_CODES = {
    PyKCS11.CKR_PIN_INCORRECT: "the SO PIN is incorrect",
    PyKCS11.CKR_PIN_INVALID: "the SO PIN is incorrect",
    PyKCS11.CKR_PIN_LEN_RANGE: "the SO PIN has the wrong length",
    PyKCS11.CKR_PIN_LOCKED: "the SO PIN is locked after too many failures",
}


class SoPinIncorrect(PinIncorrect):
    """The security officer's login was refused. Takes no PIN, so none can leak here."""

    def __init__(self, token_label: str, reason: str) -> None:
        HsmError.__init__(
            self,
            f"security officer login to HSM token {token_label!r} failed: {reason} "
            "(check CUSTODY_HSM_SO_PIN or CUSTODY_HSM_SO_PIN_FILE)",
        )
        self.token_label = token_label


def aes_check_value(key: bytes) -> bytes:
    """The PKCS#11 v3 check value of an AES key: the first 3 bytes of a zero block encrypted
    with it (ECB), what the token reports as CKA_CHECK_VALUE."""
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305 -- one block
    return (encryptor.update(bytes(16)) + encryptor.finalize())[:3]


class KeyCeremony:
    """A R/W session on one token holding a ceremony's KEK. Use `for_backup` or `for_restore`."""

    def __init__(
        self, module_path: str, token_label: str, *, user_pin: str, so_pin: str | None, kek: bytes
    ) -> None:
        if len(kek) != 32:
            raise HsmError(f"a ceremony's KEK is AES-256 (32 bytes), got {len(kek)}")
        self._token_label = token_label
        self._library: Library = library(module_path)
        self._created: list[Any] = []  # token objects a restore made, newest last
        self._wrap_kek: Any = None
        with self._library.lock:
            self._slot = find_slot(self._library, token_label)
            try:
                self._session = self._library.pykcs11.openSession(
                    self._slot, PyKCS11.CKF_RW_SESSION
                )
            except PyKCS11.PyKCS11Error as exc:
                raise hsm_error(exc, "opening a session", token_label) from exc
            self._logged_in = False
            try:
                if so_pin is not None:
                    self._wrap_kek = self._import_trusted_kek(so_pin, kek)
                self._library.login(self._session, self._slot, user_pin, token_label)
                self._logged_in = True
                self._unwrap_kek = self._import_kek(kek, wrap=False)
            except BaseException:
                self._close_session()
                raise
        self._closed = False

    @classmethod
    def for_backup(
        cls, module_path: str, token_label: str, *, user_pin: str, so_pin: str, kek: bytes
    ) -> KeyCeremony:
        """Wraps keys under a trusted KEK (the SO imports it) and can check the blobs."""
        return cls(module_path, token_label, user_pin=user_pin, so_pin=so_pin, kek=kek)

    @classmethod
    def for_restore(
        cls, module_path: str, token_label: str, *, user_pin: str, kek: bytes
    ) -> KeyCeremony:
        """Unwraps keys into the token; needs no SO."""
        return cls(module_path, token_label, user_pin=user_pin, so_pin=None, kek=kek)

    def __repr__(self) -> str:
        return f"KeyCeremony(token={self._token_label!r})"

    def __enter__(self) -> KeyCeremony:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """End the session: the KEK and every session object go with it. What `restore` made
        stays on the token unless `discard` was called."""
        if self._closed:
            return
        self._closed = True
        with self._library.lock:
            self._close_session()

    # -- backup ------------------------------------------------------------------------------

    def wrap(self, label: str) -> WrappedKey:
        """The key `label` wrapped under the trusted KEK (CKM_AES_KEY_WRAP_PAD, RFC 5649)."""
        if self._wrap_kek is None:
            raise HsmError("this ceremony has no trusted KEK: it cannot wrap")
        with self._call("key wrapping", label) as session:
            private, info = self._describe(label)
            attributes = self._protection(private)
            if attributes not in (templates.GENERATED[Backup.TRUSTED_WRAP], templates.UNWRAPPED):
                raise HsmError(
                    f"key {label!r} is not backup-able on token {self._token_label!r} "
                    "(it is not sensitive, extractable only under a trusted key, "
                    "unmodifiable and non-copyable)"
                )
            blob = bytes(session.wrapKey(self._wrap_kek, private, _KEY_WRAP_PAD))
        return WrappedKey(info=info, blob=blob)

    def check(self, wrapped: WrappedKey) -> None:
        """Prove a blob restores: unwrap it as a session object, sign, verify, destroy."""
        with self._call("checking a wrapped key", wrapped.info.label) as session:
            template = templates.unwrapped_private_template(
                _CHECK_LABEL, bytes.fromhex(wrapped.info.key_id), token=False
            )
            handle = session.unwrapKey(self._unwrap_kek, wrapped.blob, template, _KEY_WRAP_PAD)
            try:
                self._require_signs(handle, wrapped.info)
            finally:
                session.destroyObject(handle)

    # -- restore -----------------------------------------------------------------------------

    def restore(self, wrapped: WrappedKey) -> KeyInfo:
        """Unwrap a backed-up secp256k1 key into the token, with its public half from the
        manifest; checked as the module says. On failure nothing of it stays on the token."""
        info = wrapped.info
        validate_label(info.label)
        if info.algorithm is not Algorithm.SECP256K1:
            raise HsmError(f"key {info.label!r}: only secp256k1 keys are restored")
        with self._call("key unwrapping", info.label) as session:
            if session.findObjects([(PyKCS11.CKA_LABEL, info.label)]):
                raise KeyExists(info.label)
            before = self._private_handles()
            mark = len(self._created)
            try:
                self._unwrap_into_token(wrapped, before)
                self._created.append(
                    session.createObject(
                        templates.restored_public_template(
                            info.label, bytes.fromhex(info.key_id), info.public_key
                        )
                    )
                )
            except BaseException:
                self._destroy(self._created[mark:])
                del self._created[mark:]
                raise
        return info

    def discard(self) -> None:
        """Destroy every key this ceremony restored (a later step failed: nothing imported)."""
        with self._call("discarding restored keys"):
            created, self._created = self._created, []
            self._destroy(created)

    def restored_attributes(self, label: str) -> dict[str, bool]:
        """The protection flags of a restored private key, as the token reports them."""
        with self._call("attribute read", label):
            private, _ = self._describe(label)
            return self._protection(private)

    # -- inside ------------------------------------------------------------------------------

    def _unwrap_into_token(self, wrapped: WrappedKey, before: set[int]) -> None:
        info = wrapped.info
        template = templates.unwrapped_private_template(
            info.label, bytes.fromhex(info.key_id), token=True
        )
        try:
            handle = self._session.unwrapKey(
                self._unwrap_kek, wrapped.blob, template, _KEY_WRAP_PAD
            )
        except PyKCS11.PyKCS11Error:
            # SoftHSM 2.6.1 can leave a half-made object behind when it refuses a template.
            self._destroy([h for h in self._private_handle_objects() if h.value() not in before])
            raise
        self._created.append(handle)
        attributes = self._protection(handle)
        if attributes != templates.UNWRAPPED:
            raise HsmError(
                f"token did not protect restored key {info.label!r} as a backup-able key "
                f"(reported {attributes})"
            )
        (ec_params,) = self._session.getAttributeValue(handle, [PyKCS11.CKA_EC_PARAMS])
        if bytes(ec_params or ()) != SECP256K1_OID:
            raise HsmError(f"the blob of key {info.label!r} does not hold a secp256k1 key")
        self._require_signs(handle, info)

    def _require_signs(self, handle: Any, info: KeyInfo) -> None:
        digest = secrets.token_bytes(32)
        raw = bytes(self._session.sign(handle, digest, PyKCS11.Mechanism(PyKCS11.CKM_ECDSA, None)))
        try:
            normalise(raw, digest, info.public_key)  # recovers the signer's key in software
        except HsmError:
            raise HsmError(
                f"the key in the blob of {info.label!r} does not sign for the public key the "
                "manifest records"
            ) from None

    def _describe(self, label: str) -> tuple[Any, KeyInfo]:
        session = self._session
        private = self._only(PyKCS11.CKO_PRIVATE_KEY, label)
        key_type, key_id, ec_params = session.getAttributeValue(
            private, [PyKCS11.CKA_KEY_TYPE, PyKCS11.CKA_ID, PyKCS11.CKA_EC_PARAMS]
        )
        algorithm = algorithm_from_ec_params(bytes(ec_params or ()))
        if algorithm is None or templates.KEY_TYPES.get(key_type) is not algorithm:
            raise HsmError(f"key {label!r} is not a secp256k1 or Ed25519 key pair")
        public = self._only(PyKCS11.CKO_PUBLIC_KEY, label, bytes(key_id))
        ec_point = bytes(session.getAttributeValue(public, [PyKCS11.CKA_EC_POINT], True)[0])
        info = KeyInfo(
            label=label,
            algorithm=algorithm,
            key_id=bytes(key_id).hex(),
            public_key=public_key_from_ec_point(algorithm, ec_point),
        )
        return private, info

    def _only(self, object_class: int, label: str, key_id: bytes | None = None) -> Any:
        template = [(PyKCS11.CKA_CLASS, object_class), (PyKCS11.CKA_LABEL, label)]
        if key_id is not None:
            template.append((PyKCS11.CKA_ID, key_id))
        handles = list(self._session.findObjects(template))
        if not handles:
            raise KeyNotFound(label)
        if len(handles) > 1:
            raise HsmError(f"more than one key pair is labelled {label!r}; refusing to guess")
        return handles[0]

    def _protection(self, handle: Any) -> dict[str, bool]:
        values = self._session.getAttributeValue(handle, templates.private_attribute_types())
        return dict(zip(templates.PROTECTION_ATTRIBUTES, values, strict=True))

    def _private_handle_objects(self) -> list[Any]:
        return list(self._session.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY)]))

    def _private_handles(self) -> set[int]:
        return {handle.value() for handle in self._private_handle_objects()}

    def _destroy(self, handles: list[Any]) -> None:
        failed = 0
        for handle in reversed(handles):
            try:
                self._session.destroyObject(handle)
            except PyKCS11.PyKCS11Error:
                failed += 1
        if failed:
            raise HsmError(
                f"{failed} object(s) a failed restore created could not be destroyed on token "
                f"{self._token_label!r}; remove them before trying again"
            )

    def _import_trusted_kek(self, so_pin: str, kek: bytes) -> Any:
        try:
            self._session.login(so_pin, PyKCS11.CKU_SO)
        except PyKCS11.PyKCS11Error as exc:
            if exc.value == PyKCS11.CKR_USER_ANOTHER_ALREADY_LOGGED_IN:
                raise HsmError(
                    f"this process is logged in to HSM token {self._token_label!r} as the user, "
                    "so the security officer cannot log in: a backup ceremony opens the token "
                    "before anything else does"
                ) from exc
            if exc.value in _SO_PIN_CODES:
                raise SoPinIncorrect(self._token_label, _SO_PIN_CODES[exc.value]) from exc
            raise hsm_error(exc, "security officer login", self._token_label) from exc
        try:
            return self._import_kek(kek, wrap=True)
        finally:
            with contextlib.suppress(PyKCS11.PyKCS11Error):
                self._session.logout()

    def _import_kek(self, kek: bytes, *, wrap: bool) -> Any:
        try:
            handle = self._session.createObject(templates.kek_template(kek, wrap=wrap))
            (reported,) = self._session.getAttributeValue(handle, [PyKCS11.CKA_CHECK_VALUE])
        except PyKCS11.PyKCS11Error as exc:
            raise hsm_error(exc, "importing the ceremony's KEK", self._token_label) from exc
        # A token that reports a check value must report the KEK's: it wraps with what we split.
        if reported and bytes(reported) != aes_check_value(kek):
            raise HsmError(f"HSM token {self._token_label!r} reports another KEK than imported")
        return handle

    @contextlib.contextmanager
    def _call(self, operation: str, key_label: str | None = None) -> Iterator[Any]:
        if self._closed:
            raise HsmError(f"the ceremony's session on token {self._token_label!r} is closed")
        with self._library.lock:
            try:
                yield self._session
            except PyKCS11.PyKCS11Error as exc:
                raise hsm_error(exc, operation, self._token_label, key_label) from exc

    def _close_session(self) -> None:
        if self._logged_in:
            self._library.release(self._session, self._slot)
            return
        with contextlib.suppress(PyKCS11.PyKCS11Error):
            self._session.closeSession()
