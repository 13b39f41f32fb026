"""The verifier over logs longer than one chunk (2**14 entries): chunk subtrees appended whole,
checkpoints inside and at chunk boundaries, faults in later chunks, one and two processes."""

from __future__ import annotations

import json

import pytest

from custody.ledger.verify import CHUNK, Checkpoint, leaf_hash, verify_log
from tests.ledger import rfc9162

SIZE = 2 * CHUNK + 1234


def entry(i: int) -> bytes:
    body = {
        "actor": "test",
        "data": {"n": str(i)},
        "index": i,
        "kind": "ledger.initialised",
        "time": "2026-11-25T12:00:00.000000Z",
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@pytest.fixture(scope="module")
def log() -> list[bytes]:
    return [entry(i) for i in range(SIZE)]


@pytest.fixture(scope="module")
def leaves(log: list[bytes]) -> list[bytes]:
    return [leaf_hash(line) for line in log]


def checkpoint(leaves: list[bytes], size: int) -> Checkpoint:
    return Checkpoint("test", size, rfc9162.mth_from_leaf_hashes(leaves[:size]), "")


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("check_format", [True, False])
def test_long_logs_verify_with_checkpoints_anywhere(
    log: list[bytes], leaves: list[bytes], workers: int, check_format: bool
) -> None:
    sizes = [CHUNK, CHUNK + 7, 2 * CHUNK, SIZE - 1, SIZE]
    report = verify_log(
        iter(log),
        [checkpoint(leaves, n) for n in sizes],
        workers=workers,
        check_format=check_format,
    )
    assert report.faults == []
    assert report.checkpoints_checked == len(sizes)
    assert report.root == rfc9162.mth_from_leaf_hashes(leaves)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_changed_entry_in_a_later_chunk_is_found(
    log: list[bytes], leaves: list[bytes], workers: int
) -> None:
    victim = CHUNK + 4321
    tampered = list(log)
    tampered[victim] = entry(victim).replace(b'"n":"', b'"n":"9')
    report = verify_log(
        iter(tampered), [checkpoint(leaves, SIZE)], workers=workers, check_format=False
    )
    assert report.faults == [
        f"checkpoint at size {SIZE} does not match the entries: some entry before index {SIZE} "
        "was changed, removed or reordered (a fork)"
    ]
    tampered[victim] = entry(victim + 1)
    named = verify_log(iter(tampered), [], workers=workers)
    assert named.faults[0].startswith(f"index {victim}:")
    assert named.size == victim
