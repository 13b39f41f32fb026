"""A logged-in session on one PKCS#11 token: generate keys, describe them, sign with them."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import PyKCS11
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from custody import tracing
from custody.hsm.ecdsa import EcdsaSignature, normalise
from custody.hsm.errors import (
    HANDLE_INVALID_CODES,
    HsmError,
    HsmSignatureInvalid,
    InvalidHsmRequest,
    KeyExists,
    KeyNotFound,
    TokenNotFound,
    TokenNotInitialised,
)
from custody.hsm.keys import (
    BACKUP_ALGORITHMS,
    Algorithm,
    Backup,
    KeyInfo,
    algorithm_from_ec_params,
    public_key_from_ec_point,
    validate_label,
)
from custody.hsm.pkcs11 import templates
from custody.hsm.pkcs11.library import Library, hsm_error, library


@dataclass(frozen=True)
class _Key:
    handle: Any  # the private key's object handle, valid for this session only
    info: KeyInfo


class Pkcs11Token:
    """A R/W user session on the token labelled `token_label`. The PIN is used and forgotten.

    `on_fault` hears of every failed call the HSM may answer differently later (a session or
    device error, the token gone): its owner then starts over (custody.runtime).
    """

    def __init__(
        self,
        module_path: str,
        token_label: str,
        pin: str,
        *,
        on_fault: Callable[[HsmError], None] | None = None,
    ) -> None:
        self._module_path = module_path
        self._on_fault = on_fault
        self._token_label = token_label
        self._pid = os.getpid()
        self._keys: dict[str, _Key] = {}
        self._library: Library = library(module_path)
        with self._library.lock:
            try:
                self._slot = self._find_slot()
                self._session = self._library.pykcs11.openSession(
                    self._slot, PyKCS11.CKF_RW_SESSION
                )
            except PyKCS11.PyKCS11Error as exc:
                raise hsm_error(exc, "opening a session", token_label) from exc
            try:
                self._library.login(self._session, self._slot, pin, token_label)
            except BaseException:
                with contextlib.suppress(PyKCS11.PyKCS11Error):  # keep the login error
                    self._session.closeSession()
                raise
        self._closed = False

    def __repr__(self) -> str:
        return f"Pkcs11Token(module={self._module_path!r}, token={self._token_label!r})"

    @property
    def ended(self) -> bool:
        """Closed, or its session ended with a reset of its library (custody.runtime may have
        reset it for another token, or another runtime of this process for its own)."""
        return self._closed or self._library.finalised

    def __enter__(self) -> Pkcs11Token:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._keys.clear()
        # In a forked child these handles are the parent's: calling C_CloseSession with them
        # could close a session the child opened that happens to have the same number.
        if self._pid == os.getpid():
            with self._library.lock:
                self._library.release(self._session, self._slot)

    def generate_key(
        self, label: str, algorithm: Algorithm, *, backup: Backup = Backup.NONE
    ) -> KeyInfo:
        validate_label(label)
        if backup is not Backup.NONE and algorithm not in BACKUP_ALGORITHMS:
            raise InvalidHsmRequest(f"{algorithm} keys cannot be made backup-able on this token")
        key_id = secrets.token_bytes(16)
        public, private, mechanism = templates.key_pair_templates(algorithm, label, key_id, backup)
        with self._call("key generation", label) as session:
            if session.findObjects([(PyKCS11.CKA_LABEL, label)]):
                raise KeyExists(label)
            handles = session.generateKeyPair(public, private, mechanism)
            self._require_protected(label, handles, templates.GENERATED[backup])
            # Described from the handles just made: no second search of the whole token.
            public_handle, private_handle = handles
            key = self._describe(label, [private_handle], [public_handle])
            self._keys[label] = key
            return key.info

    def list_keys(self) -> list[KeyInfo]:
        """Every secp256k1 and Ed25519 key pair on the token; other objects are left out."""
        # Two searches in all, not two per key: SoftHSM's file store reads every object on the
        # token for each search, so a search per key made listing quadratic in the token's size.
        with self._call("key listing"):
            privates = self._by_label(PyKCS11.CKO_PRIVATE_KEY)
            publics = self._by_label(PyKCS11.CKO_PUBLIC_KEY)
            infos = []
            for label in sorted(label for label in privates if label):
                with contextlib.suppress(_Unsupported):
                    self._keys.pop(label, None)
                    key = self._describe(label, privates[label], publics.get(label, []))
                    self._keys[label] = key
                    infos.append(key.info)
            return infos

    def get_key(self, label: str) -> KeyInfo:
        """Read from the token each time (signing uses the cache), so it is never stale."""
        with self._call("key lookup", label):
            self._keys.pop(label, None)
            return self._key(label).info

    def destroy_key(self, label: str) -> KeyInfo:
        """Destroy both halves of a key pair (`custody keys retire`); returns what it was."""
        with self._call("key destruction", label) as session:
            self._keys.pop(label, None)
            key = self._describe(label)
            public = self._find(PyKCS11.CKO_PUBLIC_KEY, label, bytes.fromhex(key.info.key_id))
            for handle in [key.handle, *public]:
                session.destroyObject(handle)
            return key.info

    def sign_secp256k1(self, label: str, digest: bytes) -> EcdsaSignature:
        if len(digest) != 32:
            # Tokens sign any length with CKM_ECDSA (SoftHSM does): a wrong length is a caller bug.
            raise InvalidHsmRequest(f"secp256k1 digest must be 32 bytes, got {len(digest)}")
        raw, info = self._sign(label, Algorithm.SECP256K1, digest, PyKCS11.CKM_ECDSA)
        return normalise(raw, digest, info.public_key)

    def sign_ed25519(self, label: str, message: bytes) -> bytes:
        if not message:
            # PyKCS11 refuses empty data only after C_SignInit, which would leave a signing
            # operation active and make the session's next sign fail with CKR_OPERATION_ACTIVE.
            raise InvalidHsmRequest("cannot sign an empty message with Ed25519 via PKCS#11")
        signature, info = self._sign(label, Algorithm.ED25519, message, PyKCS11.CKM_EDDSA)
        try:
            # Fail closed on a faulty token, as normalise() does for ECDSA.
            Ed25519PublicKey.from_public_bytes(info.public_key).verify(signature, message)
        except InvalidSignature:
            raise HsmSignatureInvalid(
                f"token's Ed25519 signature by {label!r} does not verify"
            ) from None
        return signature

    def private_key_attributes(self, label: str) -> dict[str, bool]:
        """The protection flags of the private key, for tests and audits."""
        with self._call("attribute read", label) as session:
            handle = self._key(label).handle
            types = templates.private_attribute_types()
            values = session.getAttributeValue(handle, types)
            if any(not isinstance(value, bool) for value in values):
                raise HsmError(f"token did not report the protection flags of key {label!r}")
            return dict(zip(templates.PROTECTION_ATTRIBUTES, values, strict=True))

    def private_key_value_readable(self, label: str) -> bool:
        """Whether the token would hand out CKA_VALUE (the private scalar). Must be False.

        PyKCS11's getAttributeValue hides CKR_ATTRIBUTE_SENSITIVE behind a None, so this asks
        the low-level binding directly and only looks at the return code.
        """
        with self._call("attribute read", label) as session:
            handle = self._key(label).handle
            attributes = PyKCS11.LowLevel.ckattrlist(1)
            attributes[0].SetType(PyKCS11.CKA_VALUE)
            code = session.lib.C_GetAttributeValue(session.session, handle, attributes)
            return bool(code == PyKCS11.CKR_OK)

    def _sign(
        self, label: str, algorithm: Algorithm, data: bytes, mechanism: int
    ) -> tuple[bytes, KeyInfo]:
        traced = {
            "custody.key_label": label,
            "custody.hsm.algorithm": str(algorithm),
            "custody.hsm.token": self._token_label,
        }
        # The span covers the wait for the library's lock too: one token, one call at a time.
        with tracing.span("hsm.sign", traced), self._call("signing", label) as session:
            for attempt in range(2):
                try:
                    key = self._key(label)
                except KeyNotFound as missing:
                    # The key signed through a handle a moment ago and is gone now: the token
                    # went away (its sessions then never see it again) or the key was deleted.
                    # Either way the owner starts over, and a fresh session answers for sure.
                    if attempt == 1 and self._on_fault is not None:
                        self._on_fault(missing)
                    raise
                if key.info.algorithm is not algorithm:
                    raise InvalidHsmRequest(
                        f"key {label!r} is {key.info.algorithm}, not {algorithm}"
                    )
                try:
                    signature = session.sign(key.handle, data, PyKCS11.Mechanism(mechanism, None))
                except PyKCS11.PyKCS11Error as exc:
                    # A cached handle goes stale if the key was destroyed and re-created.
                    if exc.value in HANDLE_INVALID_CODES and attempt == 0:
                        self._keys.pop(label, None)
                        continue
                    raise
                return bytes(signature), key.info
        raise AssertionError("unreachable")  # pragma: no cover

    @contextlib.contextmanager
    def _call(self, operation: str, key_label: str | None = None) -> Iterator[Any]:
        if self._closed:
            raise HsmError(f"HSM session on token {self._token_label!r} is closed")
        if self._pid != os.getpid():
            raise HsmError("HSM session was opened in another process; open a new Pkcs11Token")
        with self._library.lock:
            if self._library.finalised:
                raise HsmError(
                    f"HSM session on token {self._token_label!r} ended when the PKCS#11 "
                    "library was reset; open a new Pkcs11Token"
                )
            try:
                yield self._session
            except PyKCS11.PyKCS11Error as exc:
                if exc.value in HANDLE_INVALID_CODES and key_label is not None:
                    self._keys.pop(key_label, None)
                error = hsm_error(exc, operation, self._token_label, key_label)
                if error.retryable and self._on_fault is not None:
                    self._on_fault(error)
                raise error from exc

    def _key(self, label: str) -> _Key:
        key = self._keys.get(label)
        if key is None:
            key = self._keys[label] = self._describe(label)
        return key

    def _describe(
        self, label: str, privates: list[Any] | None = None, publics: list[Any] | None = None
    ) -> _Key:
        """The key pair labelled `label`, found on the token, or among `privates` and `publics`
        (every private and public object with that label) when the caller searched already."""
        session = self._session
        if privates is None:
            privates = self._find(PyKCS11.CKO_PRIVATE_KEY, label)
        private = self._only(privates, label)
        key_type, key_id, ec_params = session.getAttributeValue(
            private, [PyKCS11.CKA_KEY_TYPE, PyKCS11.CKA_ID, PyKCS11.CKA_EC_PARAMS]
        )
        algorithm = algorithm_from_ec_params(bytes(ec_params or ()))
        if algorithm is None or templates.KEY_TYPES.get(key_type) is not algorithm:
            raise _Unsupported(label)
        # The public half must carry the same CKA_ID, so a stray object cannot pose as it.
        if publics is None:
            publics = self._find(PyKCS11.CKO_PUBLIC_KEY, label, bytes(key_id))
        else:
            publics = [h for h in publics if self._key_id(h) == bytes(key_id)]
        public = self._only(publics, label)
        ec_point = bytes(session.getAttributeValue(public, [PyKCS11.CKA_EC_POINT], True)[0])
        info = KeyInfo(
            label=label,
            algorithm=algorithm,
            key_id=bytes(key_id).hex(),
            public_key=public_key_from_ec_point(algorithm, ec_point),
        )
        return _Key(handle=private, info=info)

    def _find(self, object_class: int, label: str, key_id: bytes | None = None) -> list[Any]:
        template = [(PyKCS11.CKA_CLASS, object_class), (PyKCS11.CKA_LABEL, label)]
        if key_id is not None:
            template.append((PyKCS11.CKA_ID, key_id))
        return list(self._session.findObjects(template))

    def _by_label(self, object_class: int) -> dict[str, list[Any]]:
        """Every object of the class on the token, by label (one search)."""
        found: dict[str, list[Any]] = {}
        for handle in self._session.findObjects([(PyKCS11.CKA_CLASS, object_class)]):
            (label,) = self._session.getAttributeValue(handle, [PyKCS11.CKA_LABEL])
            found.setdefault(label, []).append(handle)
        return found

    def _key_id(self, handle: Any) -> bytes:
        (key_id,) = self._session.getAttributeValue(handle, [PyKCS11.CKA_ID])
        return bytes(key_id or ())

    @staticmethod
    def _only(handles: list[Any], label: str) -> Any:
        if not handles:
            raise KeyNotFound(label)
        if len(handles) > 1:
            raise HsmError(f"more than one key pair is labelled {label!r}; refusing to guess")
        return handles[0]

    def _require_protected(
        self, label: str, handles: tuple[Any, Any], required: dict[str, bool]
    ) -> None:
        """Destroy a new key pair the token did not protect as asked (invariant 7), and refuse."""
        values = self._session.getAttributeValue(handles[1], templates.private_attribute_types())
        if values != [required[name] for name in templates.PROTECTION_ATTRIBUTES]:
            for handle in handles:
                self._session.destroyObject(handle)
            raise HsmError(
                f"token did not make new key {label!r} sensitive, "
                "non-extractable (or extractable only under a trusted key), "
                "unmodifiable and non-copyable"
            )

    def _find_slot(self) -> int:
        matches = []
        for slot in self._library.pykcs11.getSlotList(tokenPresent=True):
            info = self._library.pykcs11.getTokenInfo(slot)
            if info.label.rstrip(" \x00") == self._token_label:
                matches.append((slot, info.flags))
        if not matches:
            raise TokenNotFound(self._token_label)
        if len(matches) > 1:
            raise TokenNotFound(self._token_label, " exactly once: several tokens share it")
        slot, flags = matches[0]
        if (
            not flags & PyKCS11.CKF_TOKEN_INITIALIZED
            or not flags & PyKCS11.CKF_USER_PIN_INITIALIZED
        ):
            raise TokenNotInitialised(self._token_label)
        return int(slot)


class _Unsupported(InvalidHsmRequest):
    """A private key custody did not make (another curve or type); list_keys skips it."""

    def __init__(self, label: str) -> None:
        super().__init__(f"key {label!r} is not a secp256k1 or Ed25519 key pair")
