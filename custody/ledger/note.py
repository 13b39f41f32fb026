"""C2SP signed notes carrying C2SP tlog-checkpoints, and note verifier keys.

checkpoint body:   <origin>\\n<tree size>\\n<base64 root hash>\\n
signed note:       <body>\\n— <key name> <base64(key id || Ed25519 signature over body)>\\n
key id:            SHA-256(<key name> || 0x0A || 0x01 || public key)[:4]
verifier key:      <key name>+<hex key id>+<base64(0x01 || public key)>
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

ED25519_TYPE = b"\x01"
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space, as signed-note requires


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519_TYPE + public_key).digest()[:4]


def verifier_key(name: str, public_key: bytes) -> str:
    encoded = base64.b64encode(ED25519_TYPE + public_key).decode()
    return f"{name}+{key_id(name, public_key).hex()}+{encoded}"


def checkpoint_body(origin: str, tree_size: int, root_hash: bytes) -> str:
    if "\n" in origin or not origin:
        raise ValueError("a checkpoint origin is one non-empty line")
    return f"{origin}\n{tree_size}\n{base64.b64encode(root_hash).decode()}\n"


@dataclass(frozen=True)
class SignedCheckpoint:
    origin: str
    tree_size: int
    root_hash: bytes
    note: str


def sign_checkpoint(
    origin: str,
    tree_size: int,
    root_hash: bytes,
    *,
    key_name: str,
    public_key: bytes,
    sign: Callable[[bytes], bytes],
) -> SignedCheckpoint:
    return cosign_checkpoint(
        origin, tree_size, root_hash, key_name=key_name, signers=[(public_key, sign)]
    )


def cosign_checkpoint(
    origin: str,
    tree_size: int,
    root_hash: bytes,
    *,
    key_name: str,
    signers: Sequence[tuple[bytes, Callable[[bytes], bytes]]],
) -> SignedCheckpoint:
    """One note, one signature line per (public key, sign) in order: a note may carry several
    signatures, and the handover checkpoint of a key rotation carries the old and the new key's."""
    body = checkpoint_body(origin, tree_size, root_hash)
    lines = []
    for public_key, sign in signers:
        signature = sign(body.encode())
        if len(signature) != 64:
            raise ValueError("Ed25519 signatures are 64 bytes")
        stamp = base64.b64encode(key_id(key_name, public_key) + signature).decode()
        lines.append(f"{SIGNATURE_PREFIX}{key_name} {stamp}\n")
    return SignedCheckpoint(origin, tree_size, root_hash, f"{body}\n{''.join(lines)}")
