"""Standalone verifier for custody ledger exports. Needs only `cryptography` and `rfc8785`.

An auditor can copy this one file and run it without custody installed:

    python verify.py EXPORT_DIR [--verifier-key KEY] [--trusted-checkpoint FILE] [--witness FILE]
                                [--allow-unsigned-tail]

EXPORT_DIR is what `custody ledger export` writes: `entries.jsonl` (one RFC 8785 canonical entry
per line, exactly the leaf bytes), `checkpoint` (a C2SP signed note) and `verifier-key`. Optional
`checkpoints.jsonl` holds every earlier checkpoint. The tree is RFC 9162 §2.1.

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
) -> Report:
    """Recompute every leaf and the root at every checkpoint's size; stop at the first fault.

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
        if progress is not None:
            progress(tree.size)
        if checked.fault:
            report.faults.append(checked.fault)
            break
    report.size, report.root = tree.size, tree.root()
    report.signed_size = max((size for size in wanted if size <= tree.size), default=0)
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


def check_chunk(start: int, lines: list[bytes], check_format: bool = True) -> CheckedChunk:
    """Leaf hashes of the well-formed prefix of a chunk, its first fault, and its root."""
    leaves: list[bytes] = []
    for offset, line in enumerate(lines):
        fault = check_entry(line, start + offset) if check_format else None
        if fault:
            return CheckedChunk(leaves, fault, None)
        leaves.append(leaf_hash(line))
    if len(leaves) != CHUNK:
        return CheckedChunk(leaves, None, None)
    subtree = TreeBuilder()
    for leaf in leaves:
        subtree.append(leaf)
    return CheckedChunk(leaves, None, subtree.root())


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


def read_export(
    directory: Path, pinned: VerifierKey | None = None
) -> tuple[VerifierKey, list[Checkpoint]]:
    """The export's checkpoints, checked with `pinned` when given. Whoever can rewrite an export
    can also replace its `verifier-key` file: only a key known from elsewhere (or a trusted
    checkpoint or witness) anchors the verification."""
    shipped = parse_verifier_key((directory / "verifier-key").read_text())
    if pinned is not None and shipped != pinned:
        raise VerificationError(
            f"the export's verifier key ({shipped.name}+{shipped.key_id.hex()}) is not the "
            f"pinned one ({pinned.name}+{pinned.key_id.hex()})"
        )
    key = pinned or shipped
    checkpoints = [parse_checkpoint((directory / "checkpoint").read_text(), key)]
    history = directory / "checkpoints.jsonl"
    if history.exists():
        checkpoints += [
            parse_checkpoint(json.loads(line)["note"], key)
            for line in history.read_text().splitlines()
            if line.strip()
        ]
    return key, checkpoints


def read_witness(path: Path, key: VerifierKey) -> list[Checkpoint]:
    """A witness file: JSON lines of {"tree_size", "note"} appended by `custody ledger publish`."""
    return [
        parse_checkpoint(json.loads(line)["note"], key)
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
    key, checkpoints = read_export(directory, pinned)
    checkpoints += [parse_checkpoint(note, key) for note in trusted]
    if witness is not None:
        checkpoints += read_witness(witness, key)
    report = verify_log(
        iter_lines(directory / "entries.jsonl"),
        checkpoints,
        progress=progress,
        workers=workers,
        check_format=check_format,
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
            shipped = parse_verifier_key((args.directory / "verifier-key").read_text())
            print(
                f"warning: trusting the export's own verifier key {shipped.name}+"
                f"{shipped.key_id.hex()}; pin it with --verifier-key, or give "
                "--trusted-checkpoint/--witness",
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
