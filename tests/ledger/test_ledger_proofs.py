"""Roots and proofs from custody's stored-subtree tree against the RFC's recursive definitions,
and custody's standalone verifier against those proofs, for every size up to 70 and larger ones.
"""

from __future__ import annotations

import random

import pytest

from custody.ledger import verify
from custody.ledger.merkle import leaf_hash
from custody.ledger.tree import completed_nodes, consistency_proof, inclusion_proof, root
from tests.ledger import rfc9162

MAX = 70
LEAVES = [f"entry {i}".encode() for i in range(300)]


def stored_tree(entries: list[bytes]) -> dict[tuple[int, int], bytes]:
    """What custody stores while appending: leaf hashes and completed perfect subtrees."""
    nodes: dict[tuple[int, int], bytes] = {}
    for i, entry in enumerate(entries):
        nodes[(0, i)] = leaf_hash(entry)
        for level, index, digest in completed_nodes(
            lambda lv, ix: nodes[(lv, ix)], i, nodes[(0, i)]
        ):
            nodes[(level, index)] = digest
    return nodes


def reader(nodes: dict[tuple[int, int], bytes]):
    return lambda level, index: nodes[(level, index)]


@pytest.fixture(scope="module")
def nodes() -> dict[tuple[int, int], bytes]:
    return stored_tree(LEAVES)


def sizes() -> list[int]:
    rng = random.Random(9162)
    return [*range(1, MAX + 1), *rng.sample(range(MAX + 1, len(LEAVES) + 1), 12)]


@pytest.mark.parametrize("size", [0, *sizes()])
def test_root_matches_rfc(nodes: dict[tuple[int, int], bytes], size: int) -> None:
    assert root(reader(nodes), size) == rfc9162.mth(LEAVES[:size])
    builder = verify.TreeBuilder()
    for entry in LEAVES[:size]:
        builder.append(verify.leaf_hash(entry))
    assert builder.root() == rfc9162.mth(LEAVES[:size])


@pytest.mark.parametrize("size", sizes())
def test_inclusion_proofs_match_rfc_and_verify(
    nodes: dict[tuple[int, int], bytes], size: int
) -> None:
    expected_root = rfc9162.mth(LEAVES[:size])
    indices = range(size) if size <= MAX else random.Random(size).sample(range(size), 10)
    for m in indices:
        got = inclusion_proof(reader(nodes), m, size)
        assert got == rfc9162.path(m, LEAVES[:size])
        leaf = rfc9162.h(b"\x00" + LEAVES[m])
        assert verify.verify_inclusion(leaf, m, size, got, expected_root)
        # the same proof must not verify for another index, another root or a changed node
        assert (
            not verify.verify_inclusion(leaf, (m + 1) % size, size, got, expected_root) or size == 1
        )
        assert not verify.verify_inclusion(leaf, m, size, got, rfc9162.h(b"other"))
        if got:
            tampered = [rfc9162.h(got[0]), *got[1:]]
            assert not verify.verify_inclusion(leaf, m, size, tampered, expected_root)


@pytest.mark.parametrize("new_size", sizes())
def test_consistency_proofs_match_rfc_and_verify(
    nodes: dict[tuple[int, int], bytes], new_size: int
) -> None:
    new_root = rfc9162.mth(LEAVES[:new_size])
    olds = (
        range(1, new_size + 1)
        if new_size <= MAX
        else random.Random(new_size).sample(range(1, new_size + 1), 10)
    )
    for m in olds:
        got = consistency_proof(reader(nodes), m, new_size)
        assert got == (rfc9162.proof(m, LEAVES[:new_size]) if m < new_size else [])
        old_root = rfc9162.mth(LEAVES[:m])
        assert verify.verify_consistency(m, new_size, old_root, new_root, got)
        if m < new_size:
            # a forked history (another old root) must not verify
            assert not verify.verify_consistency(m, new_size, rfc9162.h(b"fork"), new_root, got)
            assert not verify.verify_consistency(m, new_size, old_root, rfc9162.h(b"x"), got)


def test_inclusion_proof_refuses_out_of_range(nodes: dict[tuple[int, int], bytes]) -> None:
    with pytest.raises(ValueError, match="outside"):
        inclusion_proof(reader(nodes), 5, 5)
    assert not verify.verify_inclusion(b"\x00" * 32, 5, 5, [], b"\x00" * 32)
