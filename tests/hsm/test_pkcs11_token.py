"""Pkcs11Token against a real SoftHSM2 token: keys, lookups, logins and protection flags."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor

import coincurve
import pytest

from custody.hsm import (
    Algorithm,
    DevToken,
    HsmError,
    HsmModuleNotFound,
    InvalidHsmRequest,
    KeyExists,
    KeyInfo,
    KeyNotFound,
    PinIncorrect,
    Pkcs11Token,
    Signer,
    TokenNotFound,
)

DIGEST = hashlib.sha256(b"custody").digest()


def _assert_pin_absent(error: BaseException, pin: str) -> None:
    rendered = "".join(traceback.format_exception(error))
    for text in (str(error), repr(error), repr(error.args), rendered):
        assert pin not in text


def test_generated_keys_are_listed_with_their_public_keys(
    hsm_token: Pkcs11Token, hsm_secp256k1_key: KeyInfo, hsm_ed25519_key: KeyInfo
) -> None:
    listed = {key.label: key for key in hsm_token.list_keys()}
    assert listed["hsm-test-secp256k1"] == hsm_secp256k1_key
    assert listed["hsm-test-ed25519"] == hsm_ed25519_key
    assert hsm_secp256k1_key.algorithm is Algorithm.SECP256K1
    assert hsm_secp256k1_key.public_key[0] == 0x04
    assert len(hsm_secp256k1_key.public_key) == 65
    assert hsm_ed25519_key.algorithm is Algorithm.ED25519
    assert len(hsm_ed25519_key.public_key) == 32
    assert len(bytes.fromhex(hsm_secp256k1_key.key_id)) == 16
    assert hsm_secp256k1_key.key_id != hsm_ed25519_key.key_id


def test_get_key_returns_what_generate_returned(
    hsm_token: Pkcs11Token, hsm_secp256k1_key: KeyInfo
) -> None:
    assert hsm_token.get_key(hsm_secp256k1_key.label) == hsm_secp256k1_key


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_duplicate_label_is_refused(
    hsm_token: Pkcs11Token, hsm_secp256k1_key: KeyInfo, algorithm: Algorithm
) -> None:
    with pytest.raises(KeyExists, match="hsm-test-secp256k1") as caught:
        hsm_token.generate_key(hsm_secp256k1_key.label, algorithm)
    assert caught.value.status == 409
    assert hsm_token.get_key(hsm_secp256k1_key.label) == hsm_secp256k1_key


def test_missing_key_is_not_found(hsm_token: Pkcs11Token, hsm_label: str) -> None:
    with pytest.raises(KeyNotFound, match=hsm_label) as caught:
        hsm_token.get_key(hsm_label)
    assert caught.value.status == 404
    with pytest.raises(KeyNotFound):
        hsm_token.sign_secp256k1(hsm_label, DIGEST)


def test_invalid_label_is_refused_before_the_token_sees_it(hsm_token: Pkcs11Token) -> None:
    with pytest.raises(InvalidHsmRequest, match="invalid key label"):
        hsm_token.generate_key("Not A Label", Algorithm.ED25519)


def test_wrong_pin_is_refused_while_the_token_is_logged_in(
    hsm_dev_token: DevToken, hsm_token: Pkcs11Token, hsm_pin: str
) -> None:
    # PKCS#11 itself would answer CKR_USER_ALREADY_LOGGED_IN here without checking the PIN.
    wrong_pin = hsm_pin[::-1]
    with pytest.raises(PinIncorrect, match="PIN is incorrect") as caught:
        Pkcs11Token(hsm_dev_token.module_path, hsm_dev_token.label, wrong_pin)
    _assert_pin_absent(caught.value, wrong_pin)
    _assert_pin_absent(caught.value, hsm_pin)


def test_second_session_closing_keeps_the_first_logged_in(
    hsm_dev_token: DevToken, hsm_token: Pkcs11Token, hsm_pin: str, hsm_secp256k1_key: KeyInfo
) -> None:
    with Pkcs11Token(hsm_dev_token.module_path, hsm_dev_token.label, hsm_pin) as second:
        assert second.get_key(hsm_secp256k1_key.label) == hsm_secp256k1_key
    hsm_token.sign_secp256k1(hsm_secp256k1_key.label, DIGEST)


def test_token_holds_no_pin(hsm_token: Pkcs11Token, hsm_pin: str) -> None:
    assert hsm_pin not in repr(hsm_token)
    assert hsm_pin not in repr(vars(hsm_token))


def test_missing_token_label_is_named(hsm_dev_token: DevToken, hsm_pin: str) -> None:
    with pytest.raises(TokenNotFound, match="no-such-token"):
        Pkcs11Token(hsm_dev_token.module_path, "no-such-token", hsm_pin)


def test_missing_module_is_reported(hsm_pin: str) -> None:
    with pytest.raises(HsmModuleNotFound, match="CUSTODY_HSM_MODULE"):
        Pkcs11Token("/nonexistent/libpkcs11.so", "custody-dev", hsm_pin)


def test_private_key_is_sensitive_and_not_extractable(
    hsm_token: Pkcs11Token, hsm_secp256k1_key: KeyInfo, hsm_ed25519_key: KeyInfo
) -> None:
    """Keys made without a backup (the default of the token API, `keys generate --no-backup`,
    every Ed25519 key): never extractable in any form. Backup-able keys:
    tests/hsm/test_wrapping.py."""
    for key in (hsm_secp256k1_key, hsm_ed25519_key):
        assert hsm_token.private_key_attributes(key.label) == {
            "CKA_SENSITIVE": True,
            "CKA_EXTRACTABLE": False,
            "CKA_WRAP_WITH_TRUSTED": False,
            "CKA_ALWAYS_SENSITIVE": True,
            "CKA_NEVER_EXTRACTABLE": True,
            "CKA_MODIFIABLE": False,
            "CKA_COPYABLE": False,
        }
        assert hsm_token.private_key_value_readable(key.label) is False


def test_digest_must_be_32_bytes(hsm_token: Pkcs11Token, hsm_secp256k1_key: KeyInfo) -> None:
    for digest in (DIGEST[:31], DIGEST + b"\x00", b""):
        with pytest.raises(InvalidHsmRequest, match="32 bytes"):
            hsm_token.sign_secp256k1(hsm_secp256k1_key.label, digest)


def test_key_must_match_the_signing_algorithm(
    hsm_token: Pkcs11Token, hsm_secp256k1_key: KeyInfo, hsm_ed25519_key: KeyInfo
) -> None:
    with pytest.raises(InvalidHsmRequest, match="is secp256k1, not ed25519"):
        hsm_token.sign_ed25519(hsm_secp256k1_key.label, b"message")
    with pytest.raises(InvalidHsmRequest, match="is ed25519, not secp256k1"):
        hsm_token.sign_secp256k1(hsm_ed25519_key.label, DIGEST)


def test_closed_token_refuses_calls(
    hsm_dev_token: DevToken, hsm_pin: str, hsm_secp256k1_key: KeyInfo
) -> None:
    token = Pkcs11Token(hsm_dev_token.module_path, hsm_dev_token.label, hsm_pin)
    token.close()
    token.close()  # idempotent
    with pytest.raises(HsmError, match="closed"):
        token.get_key(hsm_secp256k1_key.label)


def test_concurrent_signing_from_threads(
    hsm_token: Pkcs11Token, hsm_secp256k1_key: KeyInfo
) -> None:
    digests = [hashlib.sha256(bytes([i])).digest() for i in range(64)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        signatures = list(
            pool.map(lambda d: hsm_token.sign_secp256k1(hsm_secp256k1_key.label, d), digests)
        )
    for digest, signature in zip(digests, signatures, strict=True):
        recovered = coincurve.PublicKey.from_signature_and_message(
            signature.to_bytes65(), digest, hasher=None
        )
        assert recovered.format(compressed=False) == hsm_secp256k1_key.public_key


def test_token_satisfies_the_signer_protocol(hsm_token: Pkcs11Token) -> None:
    signer: Signer = hsm_token
    assert signer is hsm_token


def test_empty_ed25519_message_is_refused_and_the_session_stays_usable(
    hsm_token: Pkcs11Token, hsm_ed25519_key: KeyInfo
) -> None:
    with pytest.raises(InvalidHsmRequest, match="empty message"):
        hsm_token.sign_ed25519(hsm_ed25519_key.label, b"")
    assert len(hsm_token.sign_ed25519(hsm_ed25519_key.label, b"m")) == 64


# Deleting keys is deliberately not part of custody.hsm; this stand-in for an operator's tool
# (pkcs11-tool, a vendor console) removes a key pair from outside the process under test.
DESTROY_SCRIPT = """
import os, sys, PyKCS11
lib = PyKCS11.PyKCS11Lib().load(sys.argv[1])
slot = next(s for s in lib.getSlotList(tokenPresent=True)
            if lib.getTokenInfo(s).label.rstrip() == sys.argv[2])
session = lib.openSession(slot, PyKCS11.CKF_RW_SESSION)
session.login(os.environ["TEST_HSM_PIN"])
for handle in session.findObjects([(PyKCS11.CKA_LABEL, sys.argv[3])]):
    session.destroyObject(handle)
session.logout()
"""


def test_key_replaced_elsewhere_is_looked_up_again(
    hsm_dev_token: DevToken, hsm_token: Pkcs11Token, hsm_pin: str, hsm_label: str
) -> None:
    old = hsm_token.generate_key(hsm_label, Algorithm.SECP256K1)
    hsm_token.sign_secp256k1(hsm_label, DIGEST)  # caches the handle
    env = {**os.environ, "TEST_HSM_PIN": hsm_pin}
    argv = [sys.executable, "-c", DESTROY_SCRIPT, hsm_dev_token.module_path, hsm_dev_token.label]
    subprocess.run([*argv, hsm_label], env=env, check=True, timeout=60)
    with pytest.raises(KeyNotFound):
        hsm_token.sign_secp256k1(hsm_label, DIGEST)

    with Pkcs11Token(hsm_dev_token.module_path, hsm_dev_token.label, hsm_pin) as other:
        new = other.generate_key(hsm_label, Algorithm.SECP256K1)
    assert new.public_key != old.public_key
    signature = hsm_token.sign_secp256k1(hsm_label, DIGEST)
    recovered = coincurve.PublicKey.from_signature_and_message(
        signature.to_bytes65(), DIGEST, hasher=None
    )
    assert recovered.format(compressed=False) == new.public_key
    assert hsm_token.get_key(hsm_label) == new
