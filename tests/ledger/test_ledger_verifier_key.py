"""Note verifier keys `<name>+<hex key id>+<base64(0x01 || public key)>`, built here from the
C2SP signed-note spec and parsed by custody, including keys whose base64 holds '+' or '/'."""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.ledger.note import verifier_key
from custody.ledger.verify import parse_verifier_key

NAME = "custody.local/ledger"


def _independent(name: str, public: bytes) -> str:
    key_id = hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]
    encoded = base64.b64encode(b"\x01" + public).decode()
    return f"{name}+{key_id.hex()}+{encoded}"


def _public(seed: int) -> bytes:
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed.to_bytes(4, "big")).digest())
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_verifier_keys_round_trip_including_plus_signs() -> None:
    with_plus = 0
    for seed in range(64):
        public = _public(seed)
        text = verifier_key(NAME, public)
        assert text == _independent(NAME, public)
        with_plus += "+" in text.split("+", 2)[2]
        parsed = parse_verifier_key(text)
        assert parsed.name == NAME
        assert parsed.public_key == public
    assert with_plus > 0, "the sample holds keys whose base64 contains '+'"
