"""RFC 9162 §2.1, written from the RFC's recursive definitions to check custody independently.

`mth`, `path` and `proof` take the data entries D[n] themselves, as the RFC does;
`mth_from_leaf_hashes` takes the leaf hashes SHA-256(0x00 || d) that custody stores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def split(n: int) -> int:
    """k: the largest power of two smaller than n (n > 1)."""
    assert n > 1
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(entries: Sequence[bytes]) -> bytes:
    """MTH(D[n]) (§2.1.1)."""
    n = len(entries)
    if n == 0:
        return h(b"")
    if n == 1:
        return h(b"\x00" + entries[0])
    k = split(n)
    return h(b"\x01" + mth(entries[:k]) + mth(entries[k:]))


def mth_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """The same tree hash, starting from the leaf hashes."""
    n = len(leaf_hashes)
    if n == 0:
        return h(b"")
    if n == 1:
        return leaf_hashes[0]
    k = split(n)
    return h(
        b"\x01" + mth_from_leaf_hashes(leaf_hashes[:k]) + mth_from_leaf_hashes(leaf_hashes[k:])
    )


def path(m: int, entries: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the inclusion proof of entry m (§2.1.3.1)."""
    n = len(entries)
    assert 0 <= m < n
    if n == 1:
        return []
    k = split(n)
    if m < k:
        return [*path(m, entries[:k]), mth(entries[k:])]
    return [*path(m - k, entries[k:]), mth(entries[:k])]


def proof(m: int, entries: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): the consistency proof from size m to size n (§2.1.4.1)."""
    if m == 0:
        return []
    return _subproof(m, entries, True)


def _subproof(m: int, entries: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(entries)
    if m == n:
        return [] if whole else [mth(entries)]
    k = split(n)
    if m <= k:
        return [*_subproof(m, entries[:k], whole), mth(entries[k:])]
    return [*_subproof(m - k, entries[k:], False), mth(entries[:k])]


def canonical(value: object) -> bytes:
    """RFC 8785 bytes via the rfc8785 package (not custody's wrapper): an entry's leaf bytes."""
    import rfc8785

    return bytes(rfc8785.dumps(value))
