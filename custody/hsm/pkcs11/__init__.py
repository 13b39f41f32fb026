"""The only code in custody that imports PyKCS11."""

from custody.hsm.pkcs11.token import Pkcs11Token

__all__ = ["Pkcs11Token"]
