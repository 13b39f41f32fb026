"""PKCS#11 key-pair templates: what the token must enforce for every key custody generates."""

from __future__ import annotations

from typing import Any

import PyKCS11

from custody.hsm.keys import ED25519_OID, SECP256K1_OID, Algorithm, Backup

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

# Invariant 7 of the design: generated on the token, never readable, and never exportable in
# clear: either not at all (CKA_EXTRACTABLE=false) or only wrapped under a key the security
# officer marked CKA_TRUSTED (CKA_WRAP_WITH_TRUSTED=true), which only a backup ceremony brings in.
# Neither half may be changed or copied once made (PKCS#11 v2.40 CKA_MODIFIABLE, CKA_COPYABLE):
# otherwise anyone holding the PIN could relabel a key to pass it off as another, give it uses it
# was not made for, or copy it under a new label outside custody's records. SoftHSM 2.6.1
# honours and reports both for EC and EdDSA key pairs (tests/hsm/test_key_attributes.py).
# CKA_DESTROYABLE stays true: retiring a key is an operator's decision, made on the token.
PROTECTION_ATTRIBUTES = (
    "CKA_SENSITIVE",
    "CKA_EXTRACTABLE",
    "CKA_WRAP_WITH_TRUSTED",
    "CKA_ALWAYS_SENSITIVE",
    "CKA_NEVER_EXTRACTABLE",
    "CKA_MODIFIABLE",
    "CKA_COPYABLE",
)
# What the token must report for a key pair it generated, per kind of backup.
GENERATED: dict[Backup, dict[str, bool]] = {
    Backup.NONE: {
        "CKA_SENSITIVE": True,
        "CKA_EXTRACTABLE": False,
        "CKA_WRAP_WITH_TRUSTED": False,
        "CKA_ALWAYS_SENSITIVE": True,
        "CKA_NEVER_EXTRACTABLE": True,
        "CKA_MODIFIABLE": False,
        "CKA_COPYABLE": False,
    },
    Backup.TRUSTED_WRAP: {
        "CKA_SENSITIVE": True,
        "CKA_EXTRACTABLE": True,
        "CKA_WRAP_WITH_TRUSTED": True,
        "CKA_ALWAYS_SENSITIVE": True,
        "CKA_NEVER_EXTRACTABLE": False,
        "CKA_MODIFIABLE": False,
        "CKA_COPYABLE": False,
    },
}
# A key restored from a backup: the same protection, but the token knows it came in wrapped
# (PKCS#11 sets CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE false for unwrapped keys).
UNWRAPPED: dict[str, bool] = {
    **GENERATED[Backup.TRUSTED_WRAP],
    "CKA_ALWAYS_SENSITIVE": False,
}
_FROZEN: Template = [(PyKCS11.CKA_MODIFIABLE, False), (PyKCS11.CKA_COPYABLE, False)]
_EXTRACTION: dict[Backup, Template] = {
    Backup.NONE: [(PyKCS11.CKA_EXTRACTABLE, False)],
    Backup.TRUSTED_WRAP: [
        (PyKCS11.CKA_EXTRACTABLE, True),
        (PyKCS11.CKA_WRAP_WITH_TRUSTED, True),
    ],
}


def key_pair_templates(
    algorithm: Algorithm, label: str, key_id: bytes, backup: Backup = Backup.NONE
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
        *_EXTRACTION[backup],
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
    return [getattr(PyKCS11, name) for name in PROTECTION_ATTRIBUTES]


# -- key ceremonies (custody.hsm.pkcs11.wrapping) ------------------------------------------------

KEK_LABEL = "custody-ceremony-kek"


def kek_template(value: bytes, *, wrap: bool) -> Template:
    """The ceremony's AES key-encryption key as a session object: gone when its session closes.

    For a backup it wraps and nothing else, and is CKA_TRUSTED (which only the security officer
    may set); for a restore it unwraps and nothing else. Public (CKA_PRIVATE=false) because the
    security officer cannot create private objects; sensitive and non-extractable, so its value
    never leaves the token again.
    """
    return [
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_SECRET_KEY),
        (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_AES),
        (PyKCS11.CKA_TOKEN, False),
        (PyKCS11.CKA_PRIVATE, False),
        (PyKCS11.CKA_SENSITIVE, True),
        (PyKCS11.CKA_EXTRACTABLE, False),
        (PyKCS11.CKA_WRAP, wrap),
        (PyKCS11.CKA_UNWRAP, not wrap),
        (PyKCS11.CKA_ENCRYPT, False),
        (PyKCS11.CKA_DECRYPT, False),
        (PyKCS11.CKA_SIGN, False),
        (PyKCS11.CKA_VERIFY, False),
        (PyKCS11.CKA_DERIVE, False),
        *([(PyKCS11.CKA_TRUSTED, True)] if wrap else []),
        (PyKCS11.CKA_LABEL, KEK_LABEL),
        (PyKCS11.CKA_VALUE, value),
        *_FROZEN,
    ]


def unwrapped_private_template(label: str, key_id: bytes, *, token: bool) -> Template:
    """A secp256k1 private key unwrapped from a backup, protected as a generated backup-able
    key. No CKA_EC_PARAMS: the token takes the curve from the PKCS#8 blob (the attribute is
    read-only in an unwrap template). `token=False` makes a session object, for checking a blob.

    CKA_MODIFIABLE comes last: SoftHSM 2.6.1 applies the template in order and refuses every
    attribute after CKA_MODIFIABLE=false with CKR_ATTRIBUTE_READ_ONLY.
    """
    return [
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY),
        (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC),
        (PyKCS11.CKA_TOKEN, token),
        (PyKCS11.CKA_PRIVATE, True),
        (PyKCS11.CKA_SENSITIVE, True),
        *_EXTRACTION[Backup.TRUSTED_WRAP],
        (PyKCS11.CKA_SIGN, True),
        (PyKCS11.CKA_DECRYPT, False),
        (PyKCS11.CKA_UNWRAP, False),
        (PyKCS11.CKA_DERIVE, False),
        (PyKCS11.CKA_LABEL, label),
        (PyKCS11.CKA_ID, key_id),
        (PyKCS11.CKA_COPYABLE, False),
        (PyKCS11.CKA_MODIFIABLE, False),
    ]


def restored_public_template(label: str, key_id: bytes, public_key: bytes) -> Template:
    """The public half of a restored secp256k1 key, from the backup's manifest (an unwrapped
    private key carries no CKA_EC_POINT)."""
    ec_point = bytes([0x04, len(public_key)]) + public_key  # DER OCTET STRING
    return [
        (PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY),
        (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC),
        (PyKCS11.CKA_TOKEN, True),
        (PyKCS11.CKA_PRIVATE, False),
        (PyKCS11.CKA_VERIFY, True),
        (PyKCS11.CKA_EC_PARAMS, SECP256K1_OID),
        (PyKCS11.CKA_EC_POINT, ec_point),
        (PyKCS11.CKA_LABEL, label),
        (PyKCS11.CKA_ID, key_id),
        (PyKCS11.CKA_COPYABLE, False),
        (PyKCS11.CKA_MODIFIABLE, False),
    ]
