"""Known-answer tests for low-s normalisation and recovery ids (no HSM involved)."""

from __future__ import annotations

import coincurve
import pytest
from eth_account import Account
from eth_hash.auto import keccak

from custody import secp256k1
from custody.hsm import EcdsaSignature, HsmError, normalise

# The eth-account documentation's example key and its published address.
PRIVATE_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
ADDRESS = "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
PUBLIC_KEY = bytes.fromhex(
    "044e3b81af9c2234cad09d679ce6035ed1392347ce64ce405f5dcd36228a25de6e"
    "47fd35c4215d1edf53e6f83de344615ce719bdb0fd878f6ed76f06dd277956de"
)
DIGEST = keccak(b"custody known-answer vector")
# RFC 6979 signature of DIGEST by PRIVATE_KEY (as libsecp256k1 computes it).
R = 0xA7939622CB891BDAF21A93388B912CE336AB6AD6278F42815171B71E2EDD8669
S = 0x45BF64436DAC079796AE5850606FC3669F495527546BC23CCA64F1BF686C6877
V = 1


def _rs(r: int, s: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def test_vector_is_what_libsecp256k1_produces() -> None:
    key = coincurve.PrivateKey(PRIVATE_KEY)
    assert key.public_key.format(compressed=False) == PUBLIC_KEY
    assert DIGEST.hex() == "453a437d5becb61b168a5d5ab20d6c433d626993b4ea2f62a375ccad2c7418a6"
    assert key.sign_recoverable(DIGEST, hasher=None) == _rs(R, S) + bytes([V])


def test_low_s_signature_keeps_its_values_and_finds_recovery_id() -> None:
    signature = normalise(_rs(R, S), DIGEST, PUBLIC_KEY)
    assert signature == EcdsaSignature(r=R, s=S, recovery_id=V)
    assert signature.to_bytes65() == _rs(R, S) + b"\x01"


def test_high_s_signature_is_flipped_and_recovery_id_follows() -> None:
    signature = normalise(_rs(R, secp256k1.N - S), DIGEST, PUBLIC_KEY)
    assert signature == EcdsaSignature(r=R, s=S, recovery_id=V)


def test_ethereum_recovers_the_published_address() -> None:
    signature = normalise(_rs(R, secp256k1.N - S), DIGEST, PUBLIC_KEY)
    vrs = (signature.recovery_id + 27, signature.r, signature.s)
    assert Account._recover_hash(DIGEST, vrs=vrs) == ADDRESS


def test_signature_by_another_key_fails_closed() -> None:
    other = coincurve.PrivateKey(b"\x01" * 32).public_key.format(compressed=False)
    with pytest.raises(HsmError, match="does not verify"):
        normalise(_rs(R, S), DIGEST, other)


def test_signature_over_another_digest_fails_closed() -> None:
    with pytest.raises(HsmError, match="does not verify"):
        normalise(_rs(R, S), keccak(b"something else"), PUBLIC_KEY)


@pytest.mark.parametrize(
    ("raw", "digest"),
    [
        (_rs(R, S)[:63], DIGEST),
        (_rs(R, S), DIGEST[:31]),
        (_rs(0, S), DIGEST),
        (_rs(R, 0), DIGEST),
        (_rs(secp256k1.N, S), DIGEST),
        (_rs(R, secp256k1.N), DIGEST),
    ],
)
def test_malformed_input_is_refused(raw: bytes, digest: bytes) -> None:
    with pytest.raises(HsmError):
        normalise(raw, digest, PUBLIC_KEY)


def test_signature_value_refuses_high_s_and_bad_recovery_id() -> None:
    with pytest.raises(HsmError, match="low-s"):
        EcdsaSignature(r=R, s=secp256k1.HALF_N + 1, recovery_id=0)
    with pytest.raises(HsmError, match="recovery id"):
        EcdsaSignature(r=R, s=S, recovery_id=2)
