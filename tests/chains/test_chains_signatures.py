from __future__ import annotations

from dataclasses import replace

import pytest
from chains_support import KEY, OTHER_KEY, address_of, sign
from coincurve import PrivateKey
from eth_account import Account
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_utils.crypto import keccak

from custody.chains import (
    Digest,
    Eip1559Fields,
    EvmAddress,
    InvalidPayload,
    SignatureMismatch,
    SignedEvmTx,
    UnsignedEvmTx,
    address_from_public_key,
    assemble_signed,
    build_eip1559,
    recovery_id_for,
    verify_signed,
)
from custody.secp256k1 import N as SECP256K1_N
from custody.secp256k1 import is_low_s, to_low_s


@pytest.fixture
def unsigned() -> UnsignedEvmTx:
    return build_eip1559(
        Eip1559Fields(
            chain_id=1,
            nonce=3,
            to=EvmAddress.parse("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
            value=10**17,
            gas=21000,
            max_fee_per_gas=3 * 10**9,
            max_priority_fee_per_gas=10**9,
        )
    )


def encode_raw(unsigned: UnsignedEvmTx, v: int, r: int, s: int) -> SignedEvmTx:
    """Encode with eth-account directly, bypassing assemble_signed's normalisation."""
    signed_dict = unsigned.fields.as_eth_account_dict() | {"v": v, "r": r, "s": s}
    raw = TypedTransaction.from_dict(signed_dict).encode()
    return SignedEvmTx(raw=raw, tx_hash=Digest(keccak(raw)), digest=unsigned.digest)


def test_address_from_public_key_matches_eth_account() -> None:
    # The documented address of the eth-account example key.
    assert str(address_of(KEY)) == "0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
    assert str(address_of(OTHER_KEY)) == Account.from_key(OTHER_KEY.secret).address


@pytest.mark.parametrize(
    ("public_key", "message"),
    [
        (KEY.public_key.format(compressed=True), "65-byte uncompressed"),
        (KEY.public_key.format(compressed=False)[1:], "65-byte uncompressed"),
        (b"\x05" + KEY.public_key.format(compressed=False)[1:], "65-byte uncompressed"),
        (b"\x04\x41" + KEY.public_key.format(compressed=False), "DER-wrapped"),
        (b"\x04" + b"\x01" * 64, "not a point on secp256k1"),
    ],
)
def test_address_from_public_key_refuses(public_key: bytes, message: str) -> None:
    with pytest.raises(InvalidPayload, match=message):
        address_from_public_key(public_key)


def test_verify_accepts_the_wallet_signature(unsigned: UnsignedEvmTx) -> None:
    signed = assemble_signed(unsigned, *sign(KEY, unsigned.digest))
    verify_signed(signed, address_of(KEY))
    assert signed.as_result() == {
        "raw_transaction": "0x" + signed.raw.hex(),
        "tx_hash": "0x" + keccak(signed.raw).hex(),
    }


def test_verify_rejects_a_signature_from_another_key(unsigned: UnsignedEvmTx) -> None:
    signed = assemble_signed(unsigned, *sign(OTHER_KEY, unsigned.digest))
    with pytest.raises(
        SignatureMismatch, match="expected 0x2c7536E3605D9C16a7a3D7b1898e529396a65c23"
    ):
        verify_signed(signed, address_of(KEY))


def test_verify_rejects_a_wrong_recovery_id(unsigned: UnsignedEvmTx) -> None:
    r, s, recovery_id = sign(KEY, unsigned.digest)
    signed = assemble_signed(unsigned, r, s, recovery_id ^ 1)
    with pytest.raises(SignatureMismatch):
        verify_signed(signed, address_of(KEY))


def test_verify_rejects_high_s_even_though_it_recovers(unsigned: UnsignedEvmTx) -> None:
    r, s, recovery_id = sign(KEY, unsigned.digest)
    high = encode_raw(unsigned, recovery_id ^ 1, r, SECP256K1_N - s)
    # eth-account alone would accept it; the EIP-2 check is ours.
    assert Account.recover_transaction(high.raw) == str(address_of(KEY))
    with pytest.raises(SignatureMismatch, match="high s"):
        verify_signed(high, address_of(KEY))


def test_assemble_normalises_high_s_to_the_same_bytes(unsigned: UnsignedEvmTx) -> None:
    r, s, recovery_id = sign(KEY, unsigned.digest)
    low = assemble_signed(unsigned, r, s, recovery_id)
    high = assemble_signed(unsigned, r, SECP256K1_N - s, recovery_id ^ 1)
    assert high == low


def test_verify_rejects_a_signed_tx_for_another_payload(unsigned: UnsignedEvmTx) -> None:
    other = build_eip1559(replace(unsigned.fields, value=10**18))
    signed = assemble_signed(other, *sign(KEY, other.digest))
    swapped = SignedEvmTx(raw=signed.raw, tx_hash=signed.tx_hash, digest=unsigned.digest)
    with pytest.raises(SignatureMismatch, match="not the approved payload"):
        verify_signed(swapped, address_of(KEY))


def test_verify_rejects_garbage_and_a_wrong_tx_hash(unsigned: UnsignedEvmTx) -> None:
    signed = assemble_signed(unsigned, *sign(KEY, unsigned.digest))
    with pytest.raises(SignatureMismatch, match="does not decode"):
        verify_signed(SignedEvmTx(b"\x02\xc0", signed.tx_hash, signed.digest), address_of(KEY))
    with pytest.raises(SignatureMismatch, match="not an EIP-1559"):
        verify_signed(SignedEvmTx(b"", signed.tx_hash, signed.digest), address_of(KEY))
    with pytest.raises(SignatureMismatch, match="transaction hash"):
        verify_signed(SignedEvmTx(signed.raw, signed.digest, signed.digest), address_of(KEY))


@pytest.mark.parametrize(
    ("r", "s", "recovery_id", "message"),
    [
        (0, 1, 0, "r is out of range"),
        (SECP256K1_N, 1, 0, "r is out of range"),
        (1, 0, 0, "s is out of range"),
        (1, SECP256K1_N, 0, "s is out of range"),
        (1, 1, 2, "recovery id must be 0 or 1"),
        (1, 1, True, "recovery id must be 0 or 1"),
        (True, 1, 0, "r must be an integer"),
    ],
)
def test_assemble_refuses_impossible_scalars(
    unsigned: UnsignedEvmTx, r: int, s: int, recovery_id: int, message: str
) -> None:
    with pytest.raises(SignatureMismatch, match=message):
        assemble_signed(unsigned, r, s, recovery_id)


def test_signature_mismatch_is_a_server_fault() -> None:
    assert SignatureMismatch("x").status == 500


def test_recovery_id_for_an_hsm_signature_without_one(unsigned: UnsignedEvmTx) -> None:
    r, s, recovery_id = sign(KEY, unsigned.digest)
    assert recovery_id_for(unsigned.digest, r, s, address_of(KEY)) == recovery_id
    # PKCS#11 tokens may return the high-s twin, whose parity is the other one.
    assert recovery_id_for(unsigned.digest, r, SECP256K1_N - s, address_of(KEY)) == recovery_id ^ 1
    with pytest.raises(SignatureMismatch, match="does not recover"):
        recovery_id_for(unsigned.digest, r, s, address_of(OTHER_KEY))


def test_to_low_s() -> None:
    assert to_low_s(5, 7, 0) == (5, 7, 0)
    assert to_low_s(5, SECP256K1_N - 7, 1) == (5, 7, 0)
    assert to_low_s(5, SECP256K1_N // 2, 1) == (5, SECP256K1_N // 2, 1)
    assert is_low_s(SECP256K1_N // 2)
    assert not is_low_s(SECP256K1_N // 2 + 1)
    assert not is_low_s(0)


def test_random_keys_round_trip() -> None:
    for seed in range(1, 6):
        key = PrivateKey(seed.to_bytes(32, "big"))
        assert str(address_of(key)) == Account.from_key(key.secret).address
