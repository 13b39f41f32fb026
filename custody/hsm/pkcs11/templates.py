"""PKCS#11 key-pair templates: what the token must enforce for every key custody generates."""

from __future__ import annotations

from typing import Any

import PyKCS11

from custody.hsm.keys import ED25519_OID, SECP256K1_OID, Algorithm

Template = list[tuple[int, Any]]

_CURVES = {
    Algorithm.SECP256K1: (PyKCS11.CKK_EC, PyKCS11.CKM_EC_KEY_PAIR_GEN, SECP256K1_OID),
    Algorithm.ED25519: (
        PyKCS11.CKK_EC_EDWARDS,
        PyKCS11.CKM_EC_EDWARDS_KEY_PAIR_GEN,
        ED25519_OID,
    ),
}
KEY_TYPES = {key_type: algorithm for algorithm, (key_type, _, _) in _CURVES.items()}

# Invariant 7 of the design: generated on the token, never readable, never exportable in clear.
# Neither half may be changed or copied once made (PKCS#11 v2.40 CKA_MODIFIABLE, CKA_COPYABLE):
# otherwise anyone holding the PIN could relabel a key to pass it off as another, give it uses it
# was not made for, or copy it under a new label outside custody's records. SoftHSM 2.6.1
# honours and reports both for EC and EdDSA key pairs (tests/hsm/test_key_attributes.py).
# CKA_DESTROYABLE stays true: retiring a key is an operator's decision, made on the token.
REQUIRED_PRIVATE_ATTRIBUTES = {
    "CKA_SENSITIVE": True,
    "CKA_EXTRACTABLE": False,
    "CKA_ALWAYS_SENSITIVE": True,
    "CKA_NEVER_EXTRACTABLE": True,
    "CKA_MODIFIABLE": False,
    "CKA_COPYABLE": False,
}
_FROZEN: Template = [(PyKCS11.CKA_MODIFIABLE, False), (PyKCS11.CKA_COPYABLE, False)]


def key_pair_templates(
    algorithm: Algorithm, label: str, key_id: bytes
) -> tuple[Template, Template, Any]:
    """(public template, private template, generation mechanism) for a new key pair."""
    key_type, mechanism, ec_params = _CURVES[algorithm]
    public: Template = [
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY),
        (PyKCS11.CKA_KEY_TYPE, key_type),
        (PyKCS11.CKA_TOKEN, True),
        (PyKCS11.CKA_PRIVATE, False),
        (PyKCS11.CKA_VERIFY, True),
        (PyKCS11.CKA_EC_PARAMS, ec_params),
        (PyKCS11.CKA_LABEL, label),
        (PyKCS11.CKA_ID, key_id),
        *_FROZEN,
    ]
    private: Template = [
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY),
        (PyKCS11.CKA_KEY_TYPE, key_type),
        (PyKCS11.CKA_TOKEN, True),
        (PyKCS11.CKA_PRIVATE, True),
        (PyKCS11.CKA_SENSITIVE, True),
        (PyKCS11.CKA_EXTRACTABLE, False),
        (PyKCS11.CKA_SIGN, True),
        # A signing key does nothing else: no decryption, unwrapping or key derivation.
        (PyKCS11.CKA_DECRYPT, False),
        (PyKCS11.CKA_UNWRAP, False),
        (PyKCS11.CKA_DERIVE, False),
        (PyKCS11.CKA_LABEL, label),
        (PyKCS11.CKA_ID, key_id),
        *_FROZEN,
    ]
    return public, private, PyKCS11.Mechanism(mechanism, None)


def private_attribute_types() -> list[int]:
    return [getattr(PyKCS11, name) for name in REQUIRED_PRIVATE_ATTRIBUTES]
