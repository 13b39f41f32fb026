"""Before a checkpoint is signed: proof that the tree extends the last signed checkpoint.

An insider who edits entries and recomputes the stored leaf hashes and subtrees would otherwise
get the next checkpoint to sign the forked tree. So nothing stored is believed here until it is
tied to a signature or re-hashed from entry bytes:

1. the last checkpoint's note must verify with the ledger key from the HSM; its size and root
   come from the signed body, and the row's columns must agree;
2. the stored subtrees that make up the tree at that size (its frontier: one perfect subtree per
   set bit of the size, O(log n) of them) must fold to the signed root. Short of a SHA-256
   collision they are then the signed tree's own, whatever was rewritten beneath them;
3. the entries appended since are re-hashed from their bytes (and compared with their stored
   leaf hashes) and appended to that frontier: the new root extends the signed one by
   construction, which is what an RFC 9162 consistency proof between the two would show;
4. the stored subtrees must give the same new root, because proofs are served from them.

The cost is O(log n) reads plus the entries since the last checkpoint. Before the first
checkpoint the frontier is empty and every entry is re-hashed, once. An entry edited below the
last checkpoint with its frontier subtree left alone changes nothing that is signed (the root
stays the genuine one); `custody ledger verify` names such an entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger.forks import ForkDetected
from custody.ledger.merkle import EMPTY_ROOT, leaf_hash
from custody.ledger.nodes import MissingNode, NodeCache, SessionNodes
from custody.ledger.tree import Frontier, frontier, root
from custody.ledger.verify import (
    KeySchedule,
    VerificationError,
    VerifierKey,
    parse_checkpoint_at,
)
from custody.store.models import LedgerCheckpoint, LedgerEntry

BATCH = 5_000


@dataclass(frozen=True)
class SignedHead:
    """A tree size and root that a verified signature vouches for."""

    size: int
    root: bytes


GENESIS = SignedHead(0, EMPTY_ROOT)


class _Broken(Exception):
    """Why the stored tree cannot be signed; becomes ForkDetected with both sizes."""


def provable_root(
    session: Session, last: LedgerCheckpoint | None, key: VerifierKey | KeySchedule, size: int
) -> bytes:
    """MTH of the first `size` entries, proven to extend the `last` checkpoint (module doc)."""
    checkpoint_size = None if last is None else last.tree_size
    try:
        head = _signed_head(last, key)
        if size < head.size:
            raise _Broken(
                f"the log has {size} entries but a checkpoint signed size {head.size} "
                "(truncated or rolled back)"
            )
        # A private cache: the proof must read what is stored now, not what this process saw.
        nodes = SessionNodes(session, NodeCache())
        tree = _signed_frontier(nodes, head)
        _append_entries(session, tree, head.size, size)
        new_root = tree.root()
        _check_stored_root(nodes, size, new_root)
    except _Broken as exc:
        raise ForkDetected(str(exc), checkpoint_size=checkpoint_size, tree_size=size) from None
    return new_root


def _signed_head(last: LedgerCheckpoint | None, key: VerifierKey | KeySchedule) -> SignedHead:
    if last is None:
        return GENESIS
    keys = key if isinstance(key, KeySchedule) else KeySchedule.single(key)
    try:
        signed = parse_checkpoint_at(last.note, keys)
    except VerificationError as exc:
        raise _Broken(
            f"the last checkpoint (size {last.tree_size}) has no valid signature by the "
            f"ledger key: {exc}"
        ) from None
    if (signed.size, signed.root) != (last.tree_size, last.root_hash):
        raise _Broken(
            f"the stored checkpoint at size {last.tree_size}: columns differ from its signed note"
        )
    return SignedHead(signed.size, signed.root)


def _signed_frontier(nodes: SessionNodes, head: SignedHead) -> Frontier:
    keys = frontier(head.size)
    nodes.prefetch(keys)
    try:
        tree = Frontier((level, nodes(level, index)) for level, index in keys)
    except MissingNode as exc:
        raise _Broken(
            f"the stored tree at size {head.size} (the last checkpoint) is incomplete: "
            f"{exc.message}"
        ) from None
    if tree.root() != head.root:
        raise _Broken(
            f"the stored tree at size {head.size} is not the one its checkpoint signed (a fork): "
            f"an entry before index {head.size} was changed, removed or reordered"
        )
    return tree


def _append_entries(session: Session, tree: Frontier, start: int, end: int) -> None:
    """Re-hash entries [start, end) from their bytes onto `tree`, in batches."""
    expected = start
    while expected < end:
        rows = session.execute(
            select(LedgerEntry.index, LedgerEntry.entry, LedgerEntry.leaf_hash)
            .where(LedgerEntry.index >= expected, LedgerEntry.index < end)
            .order_by(LedgerEntry.index)
            .limit(BATCH)
        ).all()
        if not rows:
            raise _Broken(f"index {expected}: entry missing (the ledger head says {end})")
        for index, entry, stored in rows:
            if index != expected:
                raise _Broken(f"index {expected}: entry missing")
            leaf = leaf_hash(bytes(entry))
            if leaf != bytes(stored):
                raise _Broken(f"index {index}: stored leaf hash does not match the entry")
            tree.append(leaf)
            expected += 1


def _check_stored_root(nodes: SessionNodes, size: int, expected: bytes) -> None:
    wanted: list[tuple[int, int]] = []

    def record(level: int, index: int) -> bytes:
        wanted.append((level, index))
        return EMPTY_ROOT

    root(record, size)
    nodes.prefetch(wanted)  # one query instead of one per subtree
    try:
        stored = root(nodes, size)
    except MissingNode as exc:
        raise _Broken(f"stored Merkle subtrees are incomplete: {exc.message}") from None
    if stored != expected:
        raise _Broken("stored Merkle subtrees do not match the entries (proofs would be wrong)")
