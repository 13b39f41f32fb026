"""Public key parsing, label rules and the PKCS#11 error mapping (no HSM involved)."""

from __future__ import annotations

import pytest

from custody.errors import Conflict, NotFound
from custody.hsm import (
    Algorithm,
    HsmError,
    InvalidHsmRequest,
    KeyExists,
    KeyInfo,
    KeyNotFound,
    MechanismNotSupported,
    PinIncorrect,
    TokenNotFound,
)
from custody.hsm import errors as hsm_errors
from custody.hsm.keys import public_key_from_ec_point, validate_label

SECP_POINT = bytes.fromhex(
    "044e3b81af9c2234cad09d679ce6035ed1392347ce64ce405f5dcd36228a25de6e"
    "47fd35c4215d1edf53e6f83de344615ce719bdb0fd878f6ed76f06dd277956de"
)
# RFC 8032 test 1 public key; it starts with 0xd7, so the raw form is not DER-like.
ED_POINT = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")


@pytest.mark.parametrize(
    ("algorithm", "ec_point", "expected"),
    [
        (Algorithm.SECP256K1, b"\x04\x41" + SECP_POINT, SECP_POINT),
        (Algorithm.SECP256K1, SECP_POINT, SECP_POINT),
        (Algorithm.ED25519, b"\x04\x20" + ED_POINT, ED_POINT),
        (Algorithm.ED25519, ED_POINT, ED_POINT),
        # A bare Ed25519 key that happens to start like a DER header is still read as bare.
        (Algorithm.ED25519, b"\x04\x1e" + ED_POINT[2:], b"\x04\x1e" + ED_POINT[2:]),
        # Long-form DER length is legal, if unusual.
        (Algorithm.ED25519, b"\x04\x81\x20" + ED_POINT, ED_POINT),
    ],
)
def test_ec_point_is_unwrapped(algorithm: Algorithm, ec_point: bytes, expected: bytes) -> None:
    assert public_key_from_ec_point(algorithm, ec_point) == expected


@pytest.mark.parametrize(
    ("algorithm", "ec_point"),
    [
        (Algorithm.SECP256K1, b"\x04\x41" + SECP_POINT[:-1]),
        (Algorithm.SECP256K1, b"\x04\x21\x02" + SECP_POINT[1:33]),  # compressed point
        (Algorithm.SECP256K1, b"\x04\x41\x04" + b"\x00" * 64),  # not on the curve
        (Algorithm.ED25519, b"\x04\x21" + ED_POINT + b"\x00"),
        (Algorithm.ED25519, b""),
    ],
)
def test_malformed_ec_point_is_refused(algorithm: Algorithm, ec_point: bytes) -> None:
    with pytest.raises(HsmError):
        public_key_from_ec_point(algorithm, ec_point)


def test_key_info_checks_public_key_length() -> None:
    with pytest.raises(HsmError, match="expected 65"):
        KeyInfo(label="a", algorithm=Algorithm.SECP256K1, key_id="00", public_key=ED_POINT)


@pytest.mark.parametrize("label", ["hot-eth", "a", "ledger.v1", "x_1", "9" * 64])
def test_valid_labels(label: str) -> None:
    assert validate_label(label) == label


@pytest.mark.parametrize("label", ["", "Hot", "-x", ".x", "a b", "a/b", "é", "9" * 65, "a\n"])
def test_invalid_labels_get_a_clear_error(label: str) -> None:
    with pytest.raises(InvalidHsmRequest, match="invalid key label") as caught:
        validate_label(label)
    assert caught.value.status == 422


@pytest.mark.parametrize(
    ("code", "expected", "status"),
    [
        (hsm_errors.CKR_PIN_INCORRECT, PinIncorrect, 503),
        (hsm_errors.CKR_PIN_LEN_RANGE, PinIncorrect, 503),
        (hsm_errors.CKR_PIN_LOCKED, PinIncorrect, 503),
        (hsm_errors.CKR_MECHANISM_INVALID, MechanismNotSupported, 503),
        (hsm_errors.CKR_CURVE_NOT_SUPPORTED, MechanismNotSupported, 503),
        (hsm_errors.CKR_TOKEN_NOT_PRESENT, TokenNotFound, 503),
        (hsm_errors.CKR_KEY_HANDLE_INVALID, KeyNotFound, 404),
        (hsm_errors.CKR_USER_PIN_NOT_INITIALIZED, hsm_errors.TokenNotInitialised, 503),
        (0x5, HsmError, 503),
    ],
)
def test_pkcs11_codes_map_to_errors(code: int, expected: type[HsmError], status: int) -> None:
    error = hsm_errors.error_for_code(
        code, "CKR_X", operation="signing", token_label="tok", key_label="k"
    )
    assert type(error) is expected
    assert error.status == status
    assert "tok" in error.message or "k" in error.message


def test_generic_errors_catch_hsm_errors() -> None:
    assert isinstance(KeyNotFound("k"), NotFound)
    assert isinstance(KeyExists("k"), Conflict)
    assert KeyExists("k").status == 409
