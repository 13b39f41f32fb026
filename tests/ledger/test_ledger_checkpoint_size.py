"""A checkpoint's tree size is a uint64 in ASCII decimal (C2SP tlog-checkpoint), even in a note
that the ledger key did sign: str.isdigit() let full-width or Arabic-Indic digits through, which
int() reads as ASCII ones, and int() of thousands of digits raised a bare ValueError instead of a
verification fault."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.ledger.note import key_id, verifier_key
from custody.ledger.verify import (
    SIGNATURE_PREFIX,
    VerificationError,
    parse_checkpoint,
    parse_verifier_key,
)

NAME = "custody.local/ledger"
ROOT = base64.b64encode(hashlib.sha256(b"root").digest()).decode()
KEY = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"checkpoint-size").digest())
PUBLIC = KEY.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _signed_note(size_text: str) -> str:
    body = f"{NAME}\n{size_text}\n{ROOT}\n"
    stamp = base64.b64encode(key_id(NAME, PUBLIC) + KEY.sign(body.encode())).decode()
    return f"{body}\n{SIGNATURE_PREFIX}{NAME} {stamp}\n"


@pytest.mark.parametrize("size", ["0", "7", "18446744073709551615"])
def test_ascii_sizes_are_read(size: str) -> None:
    key = parse_verifier_key(verifier_key(NAME, PUBLIC))
    assert parse_checkpoint(_signed_note(size), key).size == int(size)


@pytest.mark.parametrize(
    "size",
    [
        pytest.param("\uff13", id="fullwidth-3"),
        pytest.param("\u0663", id="arabic-indic-3"),
        pytest.param("1\u0663", id="mixed"),
        pytest.param("\u00b2", id="superscript-2"),
        pytest.param("9" * 5000, id="5000-digits"),
        pytest.param(str(2**64), id="2**64"),
        pytest.param("1" + "0" * 20, id="21-digits"),
        pytest.param("07", id="leading-zero"),
        pytest.param("+7", id="plus-sign"),
        pytest.param("1_000", id="underscore"),
    ],
)
def test_other_sizes_are_a_verification_fault(size: str) -> None:
    key = parse_verifier_key(verifier_key(NAME, PUBLIC))
    with pytest.raises(VerificationError, match="tree size"):
        parse_checkpoint(_signed_note(size), key)
