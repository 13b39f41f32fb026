"""Backup-able keys on the real SoftHSM2 token: what protects them, who can wrap them, and the
restore half of a key ceremony (custody.hsm.pkcs11.wrapping).

The wrapping half needs the security officer, who cannot log in to a token this process is
logged in to as the user (the session token is, for the whole test session): backups run in
processes of their own (tests/ceremonies). Here the blobs a restore reads are made in software
with a KEK the test holds, exactly as the token's CKM_AES_KEY_WRAP_PAD makes them: RFC 5649 over
the PKCS#8 form of the key.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import coincurve
import PyKCS11
import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from custody.hsm import (
    Algorithm,
    Backup,
    DevToken,
    HsmError,
    InvalidHsmRequest,
    KeyExists,
    KeyInfo,
    Pkcs11Token,
)
from custody.hsm.devtoken import read_so_pin_file
from custody.hsm.keys import WrappedKey
from custody.hsm.pkcs11.library import library
from custody.hsm.pkcs11.wrapping import KeyCeremony

# PKCS#8 PrivateKeyInfo of a secp256k1 key, as SoftHSM 2.6.1 encodes it before wrapping (no
# public key inside): the prefix, then the 32-byte private scalar.
PKCS8_SECP256K1 = bytes.fromhex(
    "303e020100301006072a8648ce3d020106052b8104000a04273025020101" + "0420"
)
RESTORED = {
    "CKA_SENSITIVE": True,
    "CKA_EXTRACTABLE": True,
    "CKA_WRAP_WITH_TRUSTED": True,
    "CKA_ALWAYS_SENSITIVE": False,
    "CKA_NEVER_EXTRACTABLE": False,
    "CKA_MODIFIABLE": False,
    "CKA_COPYABLE": False,
}


@pytest.fixture
def raw_session(hsm_token: Pkcs11Token, hsm_dev_token: DevToken) -> Iterator[Any]:
    """A plain PyKCS11 session in this process, logged in as the user through `hsm_token`
    (login state belongs to the process): what anyone with the user PIN could do."""
    lib = library(hsm_dev_token.module_path)
    slot = next(
        s
        for s in lib.pykcs11.getSlotList(tokenPresent=True)
        if lib.pykcs11.getTokenInfo(s).label.rstrip() == hsm_dev_token.label
    )
    with lib.lock:
        session = lib.pykcs11.openSession(slot, PyKCS11.CKF_RW_SESSION)
    try:
        yield session
    finally:
        with lib.lock:
            session.closeSession()


def _private(session: Any, label: str) -> Any:
    (handle,) = session.findObjects(
        [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_LABEL, label)]
    )
    return handle


def _aes_wrapping_key(session: Any, **extra: Any) -> Any:
    template = [
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY),
        (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_AES),
        (PyKCS11.CKA_TOKEN, False),
        (PyKCS11.CKA_WRAP, True),
        (PyKCS11.CKA_VALUE, secrets.token_bytes(32)),
        *[(getattr(PyKCS11, name), value) for name, value in extra.items()],
    ]
    return session.createObject(template)


def _error(call: Any) -> str:
    with pytest.raises(PyKCS11.PyKCS11Error) as caught:
        call()
    return str(PyKCS11.CKR[caught.value.value])


def test_backup_able_key_is_sensitive_and_extractable_only_under_a_trusted_key(
    hsm_token: Pkcs11Token, hsm_label: str
) -> None:
    hsm_token.generate_key(hsm_label, Algorithm.SECP256K1, backup=Backup.TRUSTED_WRAP)
    assert hsm_token.private_key_attributes(hsm_label) == {
        "CKA_SENSITIVE": True,
        "CKA_EXTRACTABLE": True,
        "CKA_WRAP_WITH_TRUSTED": True,
        "CKA_ALWAYS_SENSITIVE": True,
        "CKA_NEVER_EXTRACTABLE": False,
        "CKA_MODIFIABLE": False,
        "CKA_COPYABLE": False,
    }
    assert hsm_token.private_key_value_readable(hsm_label) is False


def test_ed25519_keys_are_never_made_backup_able(hsm_token: Pkcs11Token, hsm_label: str) -> None:
    with pytest.raises(InvalidHsmRequest, match="cannot be made backup-able"):
        hsm_token.generate_key(hsm_label, Algorithm.ED25519, backup=Backup.TRUSTED_WRAP)
    assert hsm_label not in {key.label for key in hsm_token.list_keys()}


def test_an_untrusted_key_cannot_wrap_a_wallet_key(
    hsm_token: Pkcs11Token,
    hsm_secp256k1_key: KeyInfo,
    raw_session: Any,
    hsm_label: str,
) -> None:
    hsm_token.generate_key(hsm_label, Algorithm.SECP256K1, backup=Backup.TRUSTED_WRAP)
    wrapping = _aes_wrapping_key(raw_session)
    pad = PyKCS11.Mechanism(PyKCS11.CKM_AES_KEY_WRAP_PAD, None)
    backup_able = _private(raw_session, hsm_label)
    assert _error(lambda: raw_session.wrapKey(wrapping, backup_able, pad)) == (
        "CKR_KEY_NOT_WRAPPABLE"
    )
    # Nor can the user make a key trusted: only the security officer can.
    assert _error(lambda: _aes_wrapping_key(raw_session, CKA_TRUSTED=True)) == (
        "CKR_ATTRIBUTE_READ_ONLY"
    )
    # A key made without a backup cannot leave the token under any key.
    never = _private(raw_session, hsm_secp256k1_key.label)
    assert _error(lambda: raw_session.wrapKey(wrapping, never, pad)) == "CKR_KEY_UNEXTRACTABLE"


def test_a_process_logged_in_as_the_user_cannot_run_a_backup(
    hsm_token: Pkcs11Token, hsm_dev_token: DevToken, hsm_pin: str
) -> None:
    with pytest.raises(HsmError, match="security officer cannot log in"):
        KeyCeremony.for_backup(
            hsm_dev_token.module_path,
            hsm_dev_token.label,
            user_pin=hsm_pin,
            so_pin=read_so_pin_file(hsm_dev_token.pin_file),
            kek=secrets.token_bytes(32),
        )


# -- restore ---------------------------------------------------------------------------------


def _blob(kek: bytes, label: str) -> tuple[WrappedKey, coincurve.PrivateKey]:
    private = coincurve.PrivateKey()
    info = KeyInfo(
        label=label,
        algorithm=Algorithm.SECP256K1,
        key_id=secrets.token_hex(16),
        public_key=private.public_key.format(compressed=False),
    )
    blob = aes_key_wrap_with_padding(kek, PKCS8_SECP256K1 + private.secret)
    return WrappedKey(info=info, blob=blob), private


@pytest.fixture
def ceremony(hsm_dev_token: DevToken, hsm_pin: str) -> Iterator[tuple[KeyCeremony, bytes]]:
    kek = secrets.token_bytes(32)
    with KeyCeremony.for_restore(
        hsm_dev_token.module_path, hsm_dev_token.label, user_pin=hsm_pin, kek=kek
    ) as made:
        yield made, kek


def _objects(session: Any) -> int:
    return len(session.findObjects([]))


def test_a_restored_key_is_protected_as_generated_and_signs(
    ceremony: tuple[KeyCeremony, bytes], hsm_token: Pkcs11Token, hsm_label: str
) -> None:
    restorer, kek = ceremony
    wrapped, private = _blob(kek, hsm_label)
    assert restorer.restore(wrapped) == wrapped.info
    assert restorer.restored_attributes(hsm_label) == RESTORED
    assert hsm_token.private_key_attributes(hsm_label) == RESTORED
    assert hsm_token.private_key_value_readable(hsm_label) is False
    assert hsm_token.get_key(hsm_label) == wrapped.info
    digest = secrets.token_bytes(32)
    signature = hsm_token.sign_secp256k1(hsm_label, digest)
    recovered = coincurve.PublicKey.from_signature_and_message(
        signature.to_bytes65(), digest, hasher=None
    )
    assert recovered.format(compressed=False) == private.public_key.format(compressed=False)


@pytest.mark.parametrize("fault", ["flipped byte", "other public key", "other kek"])
def test_a_blob_that_does_not_restore_leaves_nothing_on_the_token(
    ceremony: tuple[KeyCeremony, bytes],
    raw_session: Any,
    hsm_token: Pkcs11Token,
    hsm_label: str,
    fault: str,
) -> None:
    restorer, kek = ceremony
    wrapped, _ = _blob(secrets.token_bytes(32) if fault == "other kek" else kek, hsm_label)
    if fault == "flipped byte":
        blob = bytearray(wrapped.blob)
        blob[20] ^= 0x01
        wrapped = WrappedKey(info=wrapped.info, blob=bytes(blob))
    if fault == "other public key":
        other = coincurve.PrivateKey().public_key.format(compressed=False)
        wrapped = WrappedKey(
            info=KeyInfo(hsm_label, Algorithm.SECP256K1, wrapped.info.key_id, other),
            blob=wrapped.blob,
        )
    before = _objects(raw_session)
    with pytest.raises(HsmError) as refused:
        restorer.restore(wrapped)
    if fault == "other public key":
        assert "does not sign for the public key the manifest records" in str(refused.value)
    assert _objects(raw_session) == before
    assert hsm_label not in {key.label for key in hsm_token.list_keys()}


def test_discard_takes_back_every_restored_key(
    ceremony: tuple[KeyCeremony, bytes], raw_session: Any, hsm_token: Pkcs11Token
) -> None:
    restorer, kek = ceremony
    before = _objects(raw_session)
    labels = [f"hsm-t-{secrets.token_hex(6)}" for _ in range(2)]
    for label in labels:
        restorer.restore(_blob(kek, label)[0])
    assert _objects(raw_session) == before + 4  # two private and two public objects
    restorer.discard()
    assert _objects(raw_session) == before
    assert not set(labels) & {key.label for key in hsm_token.list_keys()}


def test_a_label_on_the_token_is_not_overwritten(
    ceremony: tuple[KeyCeremony, bytes], hsm_secp256k1_key: KeyInfo, hsm_token: Pkcs11Token
) -> None:
    restorer, kek = ceremony
    with pytest.raises(KeyExists):
        restorer.restore(_blob(kek, hsm_secp256k1_key.label)[0])
    assert hsm_token.get_key(hsm_secp256k1_key.label) == hsm_secp256k1_key


def test_the_kek_leaves_with_the_ceremony(
    hsm_dev_token: DevToken, hsm_pin: str, raw_session: Any
) -> None:
    secret_keys = [(PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY)]
    before = len(raw_session.findObjects(secret_keys))
    with KeyCeremony.for_restore(
        hsm_dev_token.module_path, hsm_dev_token.label, user_pin=hsm_pin, kek=bytes(32)
    ):
        assert len(raw_session.findObjects(secret_keys)) == before + 1
    assert len(raw_session.findObjects(secret_keys)) == before
