"""Keys in a PKCS#11 HSM: generation, public keys and signing, plus a SoftHSM2 dev token.

Importing this package does not load PyKCS11 or any PKCS#11 library: `Pkcs11Token` is imported
on first access, so tools that only need key descriptions or the dev-token helpers stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from custody.hsm.devtoken import (
    DevToken,
    activate_dev_token,
    ensure_dev_token,
    find_softhsm_module,
    read_pin_file,
)
from custody.hsm.ecdsa import EcdsaSignature, normalise
from custody.hsm.errors import (
    HsmError,
    HsmModuleNotFound,
    InvalidHsmRequest,
    KeyExists,
    KeyNotFound,
    MechanismNotSupported,
    PinIncorrect,
    TokenNotFound,
    TokenNotInitialised,
)
from custody.hsm.keys import Algorithm, Backup, KeyInfo
from custody.hsm.signer import Signer

if TYPE_CHECKING:
    from custody.hsm.pkcs11 import Pkcs11Token

__all__ = [
    "Algorithm",
    "Backup",
    "DevToken",
    "EcdsaSignature",
    "HsmError",
    "HsmModuleNotFound",
    "InvalidHsmRequest",
    "KeyExists",
    "KeyInfo",
    "KeyNotFound",
    "MechanismNotSupported",
    "PinIncorrect",
    "Pkcs11Token",
    "Signer",
    "TokenNotFound",
    "TokenNotInitialised",
    "activate_dev_token",
    "ensure_dev_token",
    "find_softhsm_module",
    "normalise",
    "read_pin_file",
]


def __getattr__(name: str) -> object:
    if name == "Pkcs11Token":
        from custody.hsm.pkcs11 import Pkcs11Token

        return Pkcs11Token
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
