"""Fixtures on the session's real SoftHSM2 token.

The token itself (`hsm_dev_token`) comes from tests/conftest.py: SoftHSM reads SOFTHSM2_CONF once
per process, so the whole test session must share one token and must not point SoftHSM elsewhere.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from custody.hsm import (
    Algorithm,
    DevToken,
    KeyInfo,
    Pkcs11Token,
    read_pin_file,
)


@pytest.fixture(scope="session")
def hsm_pin(hsm_dev_token: DevToken) -> str:
    return read_pin_file(hsm_dev_token.pin_file)


@pytest.fixture(scope="session")
def hsm_token(hsm_dev_token: DevToken, hsm_pin: str) -> Iterator[Pkcs11Token]:
    with Pkcs11Token(hsm_dev_token.module_path, hsm_dev_token.label, hsm_pin) as token:
        yield token


@pytest.fixture(scope="session")
def hsm_secp256k1_key(hsm_token: Pkcs11Token) -> KeyInfo:
    return hsm_token.generate_key("hsm-test-secp256k1", Algorithm.SECP256K1)


@pytest.fixture(scope="session")
def hsm_ed25519_key(hsm_token: Pkcs11Token) -> KeyInfo:
    return hsm_token.generate_key("hsm-test-ed25519", Algorithm.ED25519)


@pytest.fixture
def hsm_label() -> str:
    """A key label no other test uses (keys persist on the token for the whole session)."""
    return f"hsm-t-{secrets.token_hex(6)}"
