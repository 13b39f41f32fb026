"""Standalone verifier for custody ledger exports. Needs only `cryptography` and `rfc8785`.

An auditor can copy this one file and run it without custody installed:

    python verify.py EXPORT_DIR [--verifier-key KEY] [--trusted-checkpoint FILE] [--witness FILE]
                                [--allow-unsigned-tail]

EXPORT_DIR is what `custody ledger export` writes: `entries.jsonl` (one RFC 8785 canonical entry
per line, exactly the leaf bytes), `checkpoint` (a C2SP signed note) and `verifier-key`. Optional
`checkpoints.jsonl` holds every earlier checkpoint. The tree is RFC 9162 §2.1.

After a key rotation (`custody ledger rotate-key`) `verifier-keys.json` lists every ledger key with
the tree sizes it signs: a checkpoint must be signed by the key(s) current at its size, the
handover checkpoint (the size just after a `ledger.key_rotated` entry) by the old and the new key,
and each key change in the list must be a rotation entry of the ledger itself, covered by that
handover. Pinning any one of the keys (--verifier-key) anchors the whole chain.

Entries after the last signed checkpoint are covered by no signature: anyone who can edit the
export could have written them. They make the verification fail unless --allow-unsigned-tail,
and even then they are reported as unverified.

This module imports nothing else from custody on purpose: it must not share code, and so bugs,
with what it checks.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SIGNATURE_PREFIX = "\u2014 "
# A C2SP tree size: a uint64 in ASCII decimal without leading zeros (str.isdigit() would also
# pass Arabic-Indic or full-width digits, which int() reads as ASCII ones).
_TREE_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


class VerificationError(Exception):
    """A fault in the ledger or its checkpoints; the message names where."""


# -- RFC 9162 hashing ----------------------------------------------------------------------------


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class TreeBuilder:
    """Appends leaves in O(1) amortised time and gives MTH of the current size in O(log n)."""

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[tuple[int, bytes]] = []  # perfect subtrees: (height, hash)

    def append(self, leaf: bytes) -> None:
        height, digest = 0, leaf
        while self._stack and self._stack[-1][0] == height:
            digest = node_hash(self._stack.pop()[1], digest)
            height += 1
        self._stack.append((height, digest))
        self.size += 1

    def append_subtree(self, height: int, digest: bytes) -> None:
        """Append a perfect subtree of 2**height leaves; the size must be a multiple of it, so
        that RFC 9162's splits fall on its boundaries."""
        leaves = 1 << height
        if self.size % leaves:
            raise ValueError("a subtree can only be appended at a multiple of its size")
        while self._stack and self._stack[-1][0] == height:
            digest = node_hash(self._stack.pop()[1], digest)
            height += 1
        self._stack.append((height, digest))
        self.size += leaves

    def root(self) -> bytes:
        if not self._stack:
            return hashlib.sha256(b"").digest()
        digest = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            digest = node_hash(left, digest)
        return digest


def verify_inclusion(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2."""
    if old_size == new_size:
        return old_root == new_root and not proof
    if old_size == 0 or old_size > new_size or not proof:
        return old_size == 0 and not proof
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


# -- signed notes and checkpoints ------------------------------------------------------------------


@dataclass(frozen=True)
class VerifierKey:
    name: str
    key_id: bytes
    public_key: bytes


def parse_verifier_key(text: str) -> VerifierKey:
    try:
        # The name cannot contain "+", but the base64 key may.
        name, key_id_hex, encoded = text.strip().split("+", 2)
        raw = base64.b64decode(encoded, validate=True)
        key_id = bytes.fromhex(key_id_hex)
    except ValueError as exc:
        raise VerificationError(f"verifier key is malformed: {exc}") from None
    if len(raw) != 33 or raw[0] != 1 or len(key_id) != 4:
        raise VerificationError("verifier key is not an Ed25519 note key")
    public_key = raw[1:]
    expected = hashlib.sha256(name.encode() + b"\n\x01" + public_key).digest()[:4]
    if expected != key_id:
        raise VerificationError("verifier key id does not match its name and public key")
    return VerifierKey(name, key_id, public_key)


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    note: str


def parse_checkpoint(note: str, key: VerifierKey) -> Checkpoint:
    """Check the note's signature by `key`, then read its tlog-checkpoint body."""
    body, sep, signatures = note.partition("\n\n")
    if not sep:
        raise VerificationError("checkpoint is not a signed note (no blank line)")
    body += "\n"
    if not _signed_by(body, signatures, key):
        raise VerificationError("checkpoint carries no valid signature by the ledger key")
    lines = body.split("\n")
    if len(lines) < 4:
        raise VerificationError("checkpoint body needs origin, size and root hash lines")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if origin != key.name:
        raise VerificationError(f"checkpoint origin {origin!r} is not the ledger {key.name!r}")
    if not _TREE_SIZE.fullmatch(size_text) or int(size_text) >= 2**64:
        raise VerificationError("checkpoint tree size is not a uint64 in ASCII decimal")
    root = base64.b64decode(root_text, validate=True)
    if len(root) != 32:
        raise VerificationError("checkpoint root hash is not 32 bytes")
    return Checkpoint(origin, int(size_text), root, note)


@dataclass(frozen=True)
class KeySpan:
    """A ledger key and the smallest tree size it signs; it signs up to the next span's first
    size, that one included (the handover checkpoint carries both keys' signatures)."""

    key: VerifierKey
    first_size: int


@dataclass(frozen=True)
class KeySchedule:
    spans: tuple[KeySpan, ...]

    @classmethod
    def single(cls, key: VerifierKey) -> KeySchedule:
        return cls((KeySpan(key, 0),))

    @property
    def current(self) -> VerifierKey:
        return self.spans[-1].key

    def keys_at(self, size: int) -> list[VerifierKey]:
        """The keys that must sign a checkpoint of `size`: two at a handover, else one."""
        keys = []
        for i, span in enumerate(self.spans):
            end = self.spans[i + 1].first_size if i + 1 < len(self.spans) else None
            if span.first_size <= size and (end is None or size <= end):
                keys.append(span.key)
        return keys

    def describe(self, key: VerifierKey) -> str:
        for i, span in enumerate(self.spans):
            if span.key == key:
                end = self.spans[i + 1].first_size if i + 1 < len(self.spans) else None
                until = "on" if end is None else f"to {end}"
                return f"{key.name}+{key.key_id.hex()} (signs sizes {span.first_size} {until})"
        return f"{key.name}+{key.key_id.hex()}"


def parse_checkpoint_at(note: str, schedule: KeySchedule) -> Checkpoint:
    """Check the note's signatures by every key `schedule` makes current at its size."""
    body, sep, signatures = note.partition("\n\n")
    lines = body.split("\n")
    size_text = lines[1] if sep and len(lines) > 1 else ""
    if not _TREE_SIZE.fullmatch(size_text) or len(schedule.spans) == 1:
        return parse_checkpoint(note, schedule.current)  # one key, or names the fault
    size = int(size_text)
    wanted = schedule.keys_at(size)
    for key in wanted:
        if not _signed_by(body + "\n", signatures, key):
            others = [
                s.key
                for s in schedule.spans
                if s.key not in wanted and _signed_by(body + "\n", signatures, s.key)
            ]
            if others:
                raise VerificationError(
                    f"checkpoint at size {size} is signed by {schedule.describe(others[0])}, "
                    f"which was not the ledger key at that size; {schedule.describe(key)} did "
                    "not sign it"
                )
            raise VerificationError(
                f"checkpoint at size {size} carries no valid signature by {schedule.describe(key)}"
            )
    return parse_checkpoint(note, wanted[0])


def _signed_by(body: str, signatures: str, key: VerifierKey) -> bool:
    for line in signatures.splitlines():
        if not line.startswith(SIGNATURE_PREFIX):
            continue
        name, _, stamp = line[len(SIGNATURE_PREFIX) :].partition(" ")
        try:
            raw = base64.b64decode(stamp, validate=True)
        except ValueError:
            continue
        if name != key.name or raw[:4] != key.key_id:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(key.public_key).verify(raw[4:], body.encode())
        except InvalidSignature:
            return False
        return True
    return False


# -- verifying a whole log -------------------------------------------------------------------------


@dataclass
class Report:
    size: int = 0
    root: bytes = b""
    checkpoints_checked: int = 0
    faults: list[str] = field(default_factory=list)
    signed_size: int = 0
    """The largest checkpoint size the entries matched: entries from here on are unsigned."""
    rotations: list[tuple[int, bytes]] = field(default_factory=list)
    """`ledger.key_rotated` entries seen: (index, entry bytes)."""

    @property
    def ok(self) -> bool:
        return not self.faults

    @property
    def unsigned(self) -> int:
        return self.size - self.signed_size


def unsigned_tail_fault(report: Report) -> str | None:
    """Why the entries after the last signed checkpoint cannot be trusted, or None."""
    if report.unsigned <= 0:
        return None
    first, last = report.signed_size, report.size - 1
    span = f"entry {first}" if first == last else f"entries {first} to {last}"
    return (
        f"{span} ({report.unsigned}) come after the last signed checkpoint "
        f"(size {report.signed_size}): no signature covers them; pass --allow-unsigned-tail "
        "to accept them unverified"
    )


class _FloatFound(ValueError):
    pass


class _IntegerTooLarge(ValueError):
    pass


def _refuse_float(text: str) -> float:
    raise _FloatFound(text)


def _bounded_int(text: str) -> int:
    value = int(text)
    if abs(value) > MAX_SAFE_INTEGER:  # RFC 8785 serialises numbers as IEEE doubles
        raise _IntegerTooLarge(text)
    return value


MAX_SAFE_INTEGER = 2**53 - 1
# A UTF-8 lead byte of a character outside the Basic Multilingual Plane.
_NON_BMP = re.compile(rb"[\xf0-\xf4]")


def check_entry(line: bytes, index: int) -> str | None:  # noqa: PLR0911  (one per fault)
    """Why the entry at `index` is malformed, or None."""
    try:
        entry = json.loads(
            line, parse_float=_refuse_float, parse_int=_bounded_int, parse_constant=_refuse_float
        )
    except _FloatFound:
        return f"index {index}: entry contains a float"
    except _IntegerTooLarge:
        return f"index {index}: entry contains an integer beyond 2^53 (not I-JSON)"
    except ValueError:
        return f"index {index}: entry is not JSON"
    if not isinstance(entry, dict):
        return f"index {index}: entry is not a JSON object"
    if entry.get("index") != index:
        return f"index {index}: entry names index {entry.get('index')!r} (reordered or missing)"
    missing = [k for k in ("time", "kind", "actor", "data") if k not in entry]
    if missing:
        return f"index {index}: entry lacks {', '.join(missing)}"
    if not _is_canonical(entry, line):
        return f"index {index}: entry bytes are not RFC 8785 canonical"
    return None


def _is_canonical(entry: dict[str, Any], line: bytes) -> bool:
    # Fast path: without floats, big integers or characters beyond the BMP (excluded above and
    # here), the standard library's sorted compact encoding is exactly RFC 8785's: same key
    # order, same string escapes. Anything else takes the reference implementation.
    if not _NON_BMP.search(line):
        try:
            compact = json.dumps(entry, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
            if compact.encode() == line:
                return True
        except UnicodeEncodeError:
            pass
    try:
        return bytes(rfc8785.dumps(entry)) == line
    except (TypeError, ValueError, rfc8785.CanonicalizationError):
        return False


def verify_log(
    entries: Iterable[bytes],
    checkpoints: list[Checkpoint],
    *,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
    check_format: bool = True,
    schedule: KeySchedule | None = None,
) -> Report:
    """Recompute every leaf and the root at every checkpoint's size; stop at the first fault.

    With a `schedule` (the checkpoints were checked against it), every key change it makes must
    be a `ledger.key_rotated` entry of the log, in order, and every rotation entry a checkpoint
    covers must have its handover checkpoint (signed by both keys): see _rotation_fault.

    Entries are checked in aligned chunks of 2**CHUNK_HEIGHT, in `workers` processes when there
    are several chunks; each full chunk also returns its subtree root, so the tree here grows a
    chunk at a time unless a checkpoint falls inside the chunk. `check_format=False` checks only
    what the hashes prove (leaves, roots, signatures), not the entries' JSON form.
    """
    report = Report()
    wanted: dict[int, list[Checkpoint]] = {}
    for cp in checkpoints:
        wanted.setdefault(cp.size, []).append(cp)
    tree = TreeBuilder()
    for checked in _checked_chunks(entries, workers, check_format):
        end = tree.size + len(checked.leaves)
        inside = any(tree.size < size < end for size in wanted)
        if checked.root is not None and not inside:
            tree.append_subtree(CHUNK_HEIGHT, checked.root)
            _check_roots_at(tree, wanted, report)
        else:
            for leaf in checked.leaves:
                tree.append(leaf)
                if tree.size in wanted:
                    _check_roots_at(tree, wanted, report)
        report.rotations.extend(checked.rotations)
        if progress is not None:
            progress(tree.size)
        if checked.fault:
            report.faults.append(checked.fault)
            break
    report.size, report.root = tree.size, tree.root()
    report.signed_size = max((size for size in wanted if size <= tree.size), default=0)
    if not report.faults and schedule is not None:
        fault = _rotation_fault(report, schedule, wanted)
        report.faults.extend([fault] if fault else [])
    if not report.faults:
        for size in sorted(s for s in wanted if s > tree.size):
            report.faults.append(
                f"a checkpoint signed size {size} but the log has only {tree.size} entries "
                "(truncated or rolled back)"
            )
    return report


CHUNK_HEIGHT = 14
CHUNK = 1 << CHUNK_HEIGHT


@dataclass(frozen=True)
class CheckedChunk:
    leaves: list[bytes]
    fault: str | None
    root: bytes | None
    """MTH of the chunk when it is full and fault-free (a perfect subtree)."""
    rotations: tuple[tuple[int, bytes], ...] = ()


def check_chunk(start: int, lines: list[bytes], check_format: bool = True) -> CheckedChunk:
    """Leaf hashes of the well-formed prefix of a chunk, its first fault, and its root."""
    leaves: list[bytes] = []
    rotations: list[tuple[int, bytes]] = []
    for offset, line in enumerate(lines):
        fault = check_entry(line, start + offset) if check_format else None
        if fault:
            return CheckedChunk(leaves, fault, None, tuple(rotations))
        leaves.append(leaf_hash(line))
        if ROTATION_MARK in line:  # cheap filter; _rotation_fault reads the entry itself
            rotations.append((start + offset, line))
    if len(leaves) != CHUNK:
        return CheckedChunk(leaves, None, None, tuple(rotations))
    subtree = TreeBuilder()
    for leaf in leaves:
        subtree.append(leaf)
    return CheckedChunk(leaves, None, subtree.root(), tuple(rotations))


ROTATION_KIND = "ledger.key_rotated"
# Inside a JSON string every quote is escaped, so these bytes only occur as a member: the
# entry's own kind or one nested in its data (which _rotations tells apart).
ROTATION_MARK = b'"kind":"ledger.key_rotated"'


def _rotations(report: Report) -> Iterator[tuple[int, VerifierKey, VerifierKey]]:
    for index, line in report.rotations:
        try:
            entry = json.loads(line)
            if entry.get("kind") != ROTATION_KIND:
                continue
            old, new = entry["data"]["old"]["verifier_key"], entry["data"]["new"]["verifier_key"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise VerificationError(
                f"index {index}: ledger.key_rotated entry does not name old and new verifier keys"
            ) from None
        yield index, parse_verifier_key(old), parse_verifier_key(new)


def _rotation_fault(
    report: Report, schedule: KeySchedule, wanted: dict[int, list[Checkpoint]]
) -> str | None:
    """The key changes of `schedule` must be exactly the rotations the log records, and each
    rotation a checkpoint covers must be signed over by the old key in its handover checkpoint
    (the size just after the entry, signed by both keys: parse_checkpoint_at checked that)."""
    spans = schedule.spans
    try:
        rotations = list(_rotations(report))
    except VerificationError as exc:
        return str(exc)
    for n, (index, old, new) in enumerate(rotations):
        handover = index + 1
        if n + 1 >= len(spans):
            return (
                f"index {index}: the ledger rotates to key {new.name}+{new.key_id.hex()}, which "
                "the list of verifier keys lacks"
            )
        before, after = spans[n], spans[n + 1]
        if (before.key, after.key, after.first_size) != (old, new, handover):
            return (
                f"index {index}: the ledger rotates from key {old.key_id.hex()} to "
                f"{new.key_id.hex()} from size {handover}, but the list of verifier keys has "
                f"{after.key.key_id.hex()} replace {before.key.key_id.hex()} from size "
                f"{after.first_size}"
            )
        if handover <= report.signed_size and handover not in wanted:
            return (
                f"index {index}: the rotation to key {new.name}+{new.key_id.hex()} is not signed "
                f"over by the old key {old.name}+{old.key_id.hex()}: no checkpoint at size "
                f"{handover} (the handover, signed by both keys)"
            )
    if len(spans) > len(rotations) + 1:
        extra = spans[len(rotations) + 1]
        return (
            f"the list of verifier keys has key {extra.key.name}+{extra.key.key_id.hex()} sign "
            f"from size {extra.first_size}, but the ledger records no such rotation"
        )
    return None


def _chunks(entries: Iterable[bytes]) -> Iterator[tuple[int, list[bytes]]]:
    chunk: list[bytes] = []
    start = 0
    for line in entries:
        chunk.append(line)
        if len(chunk) == CHUNK:
            yield start, chunk
            start += len(chunk)
            chunk = []
    if chunk:
        yield start, chunk


def _checked_chunks(
    entries: Iterable[bytes], workers: int, check_format: bool
) -> Iterator[CheckedChunk]:
    chunks = _chunks(entries)
    first = next(chunks, None)
    if first is None:
        return
    second = next(chunks, None)
    if workers <= 1 or second is None:  # a small log is not worth starting processes for
        for start, lines in itertools.chain([first], [second] if second else [], chunks):
            yield check_chunk(start, lines, check_format)
        return
    from concurrent.futures import Future, ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        pending: list[Future[CheckedChunk]] = []
        for start, lines in itertools.chain([first, second], chunks):
            pending.append(pool.submit(check_chunk, start, lines, check_format))
            if len(pending) > 2 * workers:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


def _check_roots_at(tree: TreeBuilder, wanted: dict[int, list[Checkpoint]], report: Report) -> None:
    for cp in wanted.get(tree.size, ()):
        report.checkpoints_checked += 1
        if cp.root != tree.root():
            report.faults.append(
                f"checkpoint at size {cp.size} does not match the entries: some entry before "
                f"index {cp.size} was changed, removed or reordered (a fork)"
            )


def read_keys(directory: Path) -> KeySchedule:
    """The export's ledger keys: `verifier-keys.json` ({"keys": [{"verifier_key", "first_size",
    …}]}, oldest first), or the one key of `verifier-key` in an export made before rotation
    existed. `verifier-key` must be the newest key."""
    shipped = parse_verifier_key((directory / "verifier-key").read_text())
    listing = directory / "verifier-keys.json"
    if not listing.exists():
        return KeySchedule.single(shipped)
    try:
        spans = tuple(
            KeySpan(parse_verifier_key(k["verifier_key"]), _size(k["first_size"]))
            for k in json.loads(listing.read_text())["keys"]
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise VerificationError(f"verifier-keys.json is malformed: {exc}") from None
    sizes = [span.first_size for span in spans]
    if not spans or sizes[0] != 0 or sizes != sorted(set(sizes)):
        raise VerificationError(
            "verifier-keys.json must list keys oldest first, the first from size 0"
        )
    return KeySchedule(spans)


def _size(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{value!r} is not a tree size")
    return value


def read_export(
    directory: Path, pinned: VerifierKey | None = None
) -> tuple[KeySchedule, list[Checkpoint]]:
    """The export's keys and checkpoints; with `pinned`, the pinned key must be one of the keys
    and the export's `verifier-key` that key or one it rotated to. Whoever can rewrite an export
    can also replace its key files: only a key known from elsewhere (or a trusted checkpoint or
    witness) anchors the verification."""
    shipped = parse_verifier_key((directory / "verifier-key").read_text())
    schedule = read_keys(directory)
    keys = [span.key for span in schedule.spans]
    if pinned is not None and (pinned not in keys or shipped not in keys[keys.index(pinned) :]):
        raise VerificationError(
            f"the export's verifier key ({shipped.name}+{shipped.key_id.hex()}) is not the "
            f"pinned one ({pinned.name}+{pinned.key_id.hex()})"
            + (" nor a key it was rotated to" if len(keys) > 1 else "")
        )
    if shipped != schedule.current:
        raise VerificationError(
            "the export's verifier-key is not the newest key of its verifier-keys.json"
        )
    checkpoints = [parse_checkpoint_at((directory / "checkpoint").read_text(), schedule)]
    history = directory / "checkpoints.jsonl"
    if history.exists():
        checkpoints += [
            parse_checkpoint_at(json.loads(line)["note"], schedule)
            for line in history.read_text().splitlines()
            if line.strip()
        ]
    return schedule, checkpoints


def read_witness(path: Path, keys: VerifierKey | KeySchedule) -> list[Checkpoint]:
    """A witness file: JSON lines of {"tree_size", "note"} appended by `custody ledger publish`."""
    schedule = keys if isinstance(keys, KeySchedule) else KeySchedule.single(keys)
    return [
        parse_checkpoint_at(json.loads(line)["note"], schedule)
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def iter_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        for line in handle:
            yield line.rstrip(b"\n")


def verify_export(
    directory: Path,
    *,
    trusted: Sequence[str] = (),
    witness: Path | None = None,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
    check_format: bool = True,
    pinned: VerifierKey | None = None,
    allow_unsigned_tail: bool = False,
) -> Report:
    schedule, checkpoints = read_export(directory, pinned)
    checkpoints += [parse_checkpoint_at(note, schedule) for note in trusted]
    if witness is not None:
        checkpoints += read_witness(witness, schedule)
    report = verify_log(
        iter_lines(directory / "entries.jsonl"),
        checkpoints,
        progress=progress,
        workers=workers,
        check_format=check_format,
        schedule=schedule,
    )
    tail = None if allow_unsigned_tail or report.faults else unsigned_tail_fault(report)
    if tail is not None:
        report.faults.append(tail)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a custody ledger export.")
    parser.add_argument("directory", type=Path)
    parser.add_argument(
        "--trusted-checkpoint",
        type=Path,
        action="append",
        default=[],
        help="a checkpoint saved earlier; the log must still contain it",
    )
    parser.add_argument("--witness", type=Path, help="a witness file of published checkpoints")
    parser.add_argument(
        "--verifier-key",
        help="the ledger's verifier key as obtained from custody (a file or the key itself); "
        "without it, the key shipped in the export is trusted",
    )
    parser.add_argument(
        "--hashes-only",
        action="store_true",
        help="check leaves, roots and signatures but not each entry's JSON form (faster)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes for the per-entry checks (default: all cores)",
    )
    parser.add_argument(
        "--allow-unsigned-tail",
        action="store_true",
        help="accept entries after the last signed checkpoint (reported as unverified)",
    )
    args = parser.parse_args(argv)
    try:
        pinned = _pinned_key(args.verifier_key)
        if pinned is None and not args.trusted_checkpoint and args.witness is None:
            shipped = read_keys(args.directory).spans
            names = ", ".join(f"{s.key.name}+{s.key.key_id.hex()}" for s in shipped)
            print(
                f"warning: trusting the export's own verifier key{'s' * (len(shipped) > 1)} "
                f"{names}; pin one with --verifier-key, or give --trusted-checkpoint/--witness",
                file=sys.stderr,
            )
        report = verify_export(
            args.directory,
            trusted=[p.read_text() for p in args.trusted_checkpoint],
            witness=args.witness,
            workers=args.workers,
            check_format=not args.hashes_only,
            pinned=pinned,
            allow_unsigned_tail=args.allow_unsigned_tail,
            progress=lambda n: print(f"\r{n:,} entries", end="", file=sys.stderr),
        )
    except (OSError, VerificationError) as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    print(file=sys.stderr)
    if not report.ok:
        print(f"error: {report.faults[0]}", file=sys.stderr)
        return 1
    print(
        f"ok: {report.size} entries, root {report.root.hex()}, "
        f"{report.checkpoints_checked} checkpoints verified{_unverified(report)}"
    )
    return 0


def _unverified(report: Report) -> str:
    if not report.unsigned:
        return ""
    return (
        f"; {report.unsigned} entries after the last signed checkpoint are unverified "
        f"(from index {report.signed_size})"
    )


def _pinned_key(value: str | None) -> VerifierKey | None:
    if value is None:
        return None
    path = Path(value)
    return parse_verifier_key(path.read_text() if path.exists() else value)


if __name__ == "__main__":
    sys.exit(main())
