"""RFC 9162 Merkle tree computed from stored perfect subtrees.

Every complete, aligned subtree of 2^level leaves is stored once, when its last leaf is appended:
node (level, i) covers leaves [i * 2^level, (i + 1) * 2^level). Any MTH(D[a:b]) that RFC 9162's
recursion asks for splits into such aligned subtrees, so roots and proofs need O(log n) reads and
appending needs O(1) amortised writes. Nothing here trusts the stored nodes for verification:
`custody ledger verify` recomputes everything from the entries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from custody.ledger.merkle import EMPTY_ROOT, node_hash

# (level, index) -> hash of that perfect subtree; level 0 is a leaf hash.
NodeReader = Callable[[int, int], bytes]


def largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162 §2.1.1: the largest power of two strictly smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_hash(read: NodeReader, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for ranges that RFC 9162's recursion produces."""
    size = end - start
    if size <= 0:
        return EMPTY_ROOT
    if size & (size - 1) == 0 and start % size == 0:
        level = size.bit_length() - 1
        return read(level, start >> level)
    k = largest_power_of_two_below(size)
    return node_hash(subtree_hash(read, start, start + k), subtree_hash(read, start + k, end))


def root(read: NodeReader, size: int) -> bytes:
    return subtree_hash(read, 0, size)


def frontier(size: int) -> list[tuple[int, int]]:
    """(level, index) of the perfect subtrees that make up a tree of `size` leaves, left to
    right: one per set bit of `size`, largest first. RFC 9162's recursion splits MTH(D[0:size])
    into exactly these, so they alone give its root and let the tree grow."""
    keys: list[tuple[int, int]] = []
    start = 0
    for level in reversed(range(size.bit_length())):
        if size >> level & 1:
            keys.append((level, start >> level))
            start += 1 << level
    return keys


class Frontier:
    """A tree known only by its frontier: (level, hash) of each perfect subtree, left to right.

    Appending a leaf merges the subtrees it completes; the root folds them from the right,
    which is MTH of the whole tree because RFC 9162 splits at the largest power of two.
    """

    def __init__(self, subtrees: Iterable[tuple[int, bytes]] = ()) -> None:
        self._subtrees = list(subtrees)

    def append(self, leaf: bytes) -> None:
        level, digest = 0, leaf
        while self._subtrees and self._subtrees[-1][0] == level:
            digest = node_hash(self._subtrees.pop()[1], digest)
            level += 1
        self._subtrees.append((level, digest))

    def root(self) -> bytes:
        if not self._subtrees:
            return EMPTY_ROOT
        digest = self._subtrees[-1][1]
        for _, left in reversed(self._subtrees[:-1]):
            digest = node_hash(left, digest)
        return digest


def inclusion_proof(read: NodeReader, index: int, size: int) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1, leaf-to-root order."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is outside a tree of size {size}")
    return _path(read, index, 0, size)


def _path(read: NodeReader, m: int, start: int, end: int) -> list[bytes]:
    n = end - start
    if n == 1:
        return []
    k = largest_power_of_two_below(n)
    if m < k:
        return [*_path(read, m, start, start + k), subtree_hash(read, start + k, end)]
    return [*_path(read, m - k, start + k, end), subtree_hash(read, start, start + k)]


def consistency_proof(read: NodeReader, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    return _subproof(read, old_size, 0, new_size, complete=True)


def _subproof(read: NodeReader, m: int, start: int, end: int, *, complete: bool) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if complete else [subtree_hash(read, start, end)]
    k = largest_power_of_two_below(n)
    if m <= k:
        return [
            *_subproof(read, m, start, start + k, complete=complete),
            subtree_hash(read, start + k, end),
        ]
    return [
        *_subproof(read, m - k, start + k, end, complete=False),
        subtree_hash(read, start, start + k),
    ]


def completed_nodes(read: NodeReader, leaf_index: int, leaf: bytes) -> list[tuple[int, int, bytes]]:
    """The perfect subtrees that appending leaf `leaf_index` completes, bottom-up (level >= 1)."""
    nodes: list[tuple[int, int, bytes]] = []
    level, index, digest = 0, leaf_index, leaf
    while index % 2 == 1:
        digest = node_hash(read(level, index - 1), digest)
        level, index = level + 1, index // 2
        nodes.append((level, index, digest))
    return nodes
