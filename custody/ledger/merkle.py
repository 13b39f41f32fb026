"""RFC 9162 §2.1 hashing: leaves are SHA-256(0x00 || entry), nodes SHA-256(0x01 || l || r)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def root_from_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) computed bottom-up in O(n) with a stack of perfect subtrees."""
    if not leaves:
        return EMPTY_ROOT
    # Each stack item is (height, hash) of a perfect subtree; merge equal heights as we go.
    stack: list[tuple[int, bytes]] = []
    for leaf in leaves:
        height, digest = 0, leaf
        while stack and stack[-1][0] == height:
            _, left = stack.pop()
            digest = node_hash(left, digest)
            height += 1
        stack.append((height, digest))
    # The remaining perfect subtrees are combined right to left, as RFC 9162 splits at the
    # largest power of two below n.
    _, digest = stack.pop()
    while stack:
        _, left = stack.pop()
        digest = node_hash(left, digest)
    return digest
