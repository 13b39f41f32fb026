"""RFC 9162 §2.1 Merkle tree hash, written here from the RFC, against custody's implementation."""

from __future__ import annotations

import random

import pytest

from custody.ledger.merkle import leaf_hash, node_hash
from custody.ledger.verify import TreeBuilder
from tests.ledger.rfc9162 import h as _sha256
from tests.ledger.rfc9162 import mth_from_leaf_hashes as mth


def root_from_leaf_hashes(leaves: list[bytes]) -> bytes:
    """The root custody's verification computes (the incremental builder)."""
    builder = TreeBuilder()
    for leaf in leaves:
        builder.append(leaf)
    return builder.root()


def _leaves(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [_sha256(b"\x00" + rng.randbytes(rng.randint(0, 40))) for _ in range(n)]


def test_reference_split_points() -> None:
    a, b, c = (_sha256(b"\x00" + bytes([i])) for i in range(3))
    node = lambda left, right: _sha256(b"\x01" + left + right)  # noqa: E731
    assert mth([a, b, c]) == node(node(a, b), c)
    assert mth([a]) == a
    assert mth([]) == bytes.fromhex(
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_leaf_and_node_hashes_use_the_rfc_prefixes() -> None:
    assert leaf_hash(b"entry") == _sha256(b"\x00entry")
    assert node_hash(b"l" * 32, b"r" * 32) == _sha256(b"\x01" + b"l" * 32 + b"r" * 32)


@pytest.mark.parametrize("size", range(71))
def test_roots_agree_for_small_sizes(size: int) -> None:
    leaves = _leaves(size, seed=size)
    assert root_from_leaf_hashes(leaves) == mth(leaves)


@pytest.mark.parametrize("size", [127, 128, 129, 255, 256, 257, 1000, 1023, 1024, 1025, 4097])
def test_roots_agree_around_powers_of_two(size: int) -> None:
    leaves = _leaves(size, seed=size)
    assert root_from_leaf_hashes(leaves) == mth(leaves)


def test_roots_agree_for_random_sizes() -> None:
    rng = random.Random(9162)
    for _ in range(8):
        size = rng.randint(71, 3000)
        leaves = _leaves(size, seed=size)
        assert root_from_leaf_hashes(leaves) == mth(leaves), size


def test_root_changes_with_any_leaf() -> None:
    leaves = _leaves(37, seed=1)
    root = root_from_leaf_hashes(leaves)
    for i in range(len(leaves)):
        changed = list(leaves)
        changed[i] = _sha256(b"\x00changed")
        assert root_from_leaf_hashes(changed) != root
    assert root_from_leaf_hashes(leaves[:-1]) != root
    assert root_from_leaf_hashes([leaves[1], leaves[0], *leaves[2:]]) != root


def test_a_frontier_of_perfect_subtrees_gives_the_root_and_grows_to_later_roots() -> None:
    """What a checkpoint's consistency check relies on: the subtrees `frontier(m)` names, each
    computed here with the reference MTH, fold to MTH(D[m]); appending leaves m..n-1 to them
    gives MTH(D[n])."""
    from custody.ledger.tree import Frontier, frontier

    leaves = _leaves(140, seed=7)
    for old in range(0, 131, 3):
        keys = frontier(old)
        assert sum(1 << level for level, _ in keys) == old
        subtrees = [
            (level, mth(leaves[index << level : (index + 1) << level])) for level, index in keys
        ]
        tree = Frontier(subtrees)
        assert tree.root() == mth(leaves[:old])
        for new in range(old, old + 10):
            assert tree.root() == mth(leaves[:new]), (old, new)
            tree.append(leaves[new])
