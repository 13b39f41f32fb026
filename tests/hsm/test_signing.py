"""Signatures from the token, checked by code that did not make them."""

from __future__ import annotations

import secrets

import coincurve
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eth_account import Account
from eth_keys.datatypes import PublicKey as EthPublicKey
from eth_keys.datatypes import Signature as EthSignature

from custody import secp256k1
from custody.hsm import KeyInfo, Pkcs11Token


def test_secp256k1_signatures_recover_to_the_key_and_its_address(
    hsm_token: Pkcs11Token, hsm_secp256k1_key: KeyInfo
) -> None:
    public_key = hsm_secp256k1_key.public_key
    eth_public_key = EthPublicKey(public_key[1:])
    address = eth_public_key.to_checksum_address()
    for _ in range(200):
        digest = secrets.token_bytes(32)
        signature = hsm_token.sign_secp256k1(hsm_secp256k1_key.label, digest)
        assert signature.s <= secp256k1.HALF_N
        recovered = coincurve.PublicKey.from_signature_and_message(
            signature.to_bytes65(), digest, hasher=None
        )
        assert recovered.format(compressed=False) == public_key
        eth_signature = EthSignature(vrs=(signature.recovery_id, signature.r, signature.s))
        assert eth_signature.verify_msg_hash(digest, eth_public_key)
        vrs = (signature.recovery_id + 27, signature.r, signature.s)
        assert Account._recover_hash(digest, vrs=vrs) == address


@pytest.mark.parametrize("message", [b"x", b"custody checkpoint\n", secrets.token_bytes(4096)])
def test_ed25519_signatures_verify_with_cryptography(
    hsm_token: Pkcs11Token, hsm_ed25519_key: KeyInfo, message: bytes
) -> None:
    signature = hsm_token.sign_ed25519(hsm_ed25519_key.label, message)
    assert len(signature) == 64
    Ed25519PublicKey.from_public_bytes(hsm_ed25519_key.public_key).verify(signature, message)
    # Ed25519 is deterministic: the token must give the same signature again.
    assert hsm_token.sign_ed25519(hsm_ed25519_key.label, message) == signature
