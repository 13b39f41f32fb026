"""`custody ledger export DIR`: the files an auditor verifies with their own tools.

entries.jsonl      one RFC 8785 entry per line, exactly the leaf bytes, up to the checkpoint
checkpoint         the newest signed note (C2SP tlog-checkpoint in a signed-note envelope)
checkpoints.jsonl  every checkpoint up to it, as {"tree_size", "note"} lines
verifier-key       the note verifier key of the current ledger key, one line
verifier-keys.json every ledger key, oldest first, with the tree sizes it signs:
                   {"origin", "keys": [{"verifier_key", "key_id", "public_key", "first_size",
                   "last_size"}]} (`last_size` null for the current key; a key signs from its
                   first size to its last, which is the next key's first: the handover)

The folder may be shared, or prepared by someone else (an auditor's drop folder): a symbolic
link planted at one of these names would make the export overwrite whatever it points at. So
the folder is opened once without following a link, a link at any name is refused before
anything is written, and each file is written to a fresh random name (created exclusively,
never through a link) and renamed into place, which replaces a name and never follows it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.errors import CustodyError, NotFound
from custody.ledger.checkpoints import latest_checkpoint
from custody.ledger.note import verifier_key
from custody.ledger.verify import KeySchedule, parse_verifier_key
from custody.store.models import LedgerCheckpoint, LedgerEntry

BATCH = 10_000
FILES = ("entries.jsonl", "checkpoints.jsonl", "checkpoint", "verifier-key", "verifier-keys.json")
# An export is for auditors to read; the folder's own mode decides who may.
FILE_MODE = 0o644


class ExportRefused(CustodyError):
    status = 409
    title = "Export refused"
    slug = "export-refused"


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    tree_size: int
    checkpoints: int


def export(
    session: Session,
    directory: Path,
    keys: str | KeySchedule,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """`keys`: every ledger key (custody.ledger.checkpoints.runtime_schedule), or the one
    verifier key of a ledger never rotated."""
    schedule = KeySchedule.single(parse_verifier_key(keys)) if isinstance(keys, str) else keys
    latest = latest_checkpoint(session)
    if latest is None:
        raise NotFound("no checkpoint yet: run `custody ledger checkpoint` first")
    history = (
        session.execute(
            select(LedgerCheckpoint)
            .where(LedgerCheckpoint.tree_size <= latest.tree_size)
            .order_by(LedgerCheckpoint.tree_size)
        )
        .scalars()
        .all()
    )
    with _Folder.open(directory) as folder:
        folder.refuse_links(FILES)
        with folder.replacing("entries.jsonl") as handle:
            written = _write_entries(session, handle, latest.tree_size, progress)
        lines = "".join(
            json.dumps({"tree_size": c.tree_size, "note": c.note}) + "\n" for c in history
        )
        folder.write("checkpoints.jsonl", lines.encode())
        folder.write("checkpoint", latest.note.encode())
        listing = key_listing(schedule, latest.tree_size)
        folder.write("verifier-key", (listing["keys"][-1]["verifier_key"] + "\n").encode())
        folder.write("verifier-keys.json", (json.dumps(listing, indent=2) + "\n").encode())
        folder.sync()
    return ExportResult(directory, written, len(history))


def key_listing(schedule: KeySchedule, tree_size: int) -> dict[str, Any]:
    """The keys that signed the exported tree (none that signs only beyond it), oldest first."""
    spans = [s for s in schedule.spans if s.first_size <= tree_size] or [schedule.spans[0]]
    keys = []
    for i, span in enumerate(spans):
        last = spans[i + 1].first_size if i + 1 < len(spans) else None
        key = span.key
        keys.append(
            {
                "verifier_key": verifier_key(key.name, key.public_key),
                "key_id": key.key_id.hex(),
                "public_key": key.public_key.hex(),
                "first_size": span.first_size,
                "last_size": last,
            }
        )
    return {"origin": spans[0].key.name, "keys": keys}


def _write_entries(
    session: Session, handle: BinaryIO, size: int, progress: Callable[[int], None] | None
) -> int:
    written = 0
    while written < size:
        rows = (
            session.execute(
                select(LedgerEntry.entry)
                .where(LedgerEntry.index >= written)
                .where(LedgerEntry.index < size)
                .order_by(LedgerEntry.index)
                .limit(BATCH)
            )
            .scalars()
            .all()
        )
        if not rows:
            break
        for entry in rows:
            handle.write(entry + b"\n")
        written += len(rows)
        if progress is not None:
            progress(written)
    return written


class _Folder:
    """The export folder, held open by descriptor: every name is resolved inside it, so the
    folder cannot be swapped for a link between the checks and the writes."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: Path) -> Iterator[_Folder]:
        path.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            kind = "a symbolic link" if path.is_symlink() else "not a folder"
            raise ExportRefused(f"export folder {path} is {kind}; choose a real folder") from None
        try:
            yield cls(path, fd)
        finally:
            os.close(fd)

    def refuse_links(self, names: tuple[str, ...]) -> None:
        for name in names:
            try:
                mode = os.stat(name, dir_fd=self.fd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(mode):
                raise ExportRefused(
                    f"{self.path / name} is a symbolic link; refusing to write through it "
                    "(remove it, or export to a new folder)"
                )
            if not stat.S_ISREG(mode):
                raise ExportRefused(f"{self.path / name} exists and is not a regular file")

    @contextlib.contextmanager
    def replacing(self, name: str) -> Iterator[BinaryIO]:
        """A new file under a random name, renamed to `name` once complete and on disk."""
        temporary = f".{name}.{secrets.token_hex(8)}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temporary, flags, FILE_MODE, dir_fd=self.fd)
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary, dir_fd=self.fd)
            raise

    def write(self, name: str, data: bytes) -> None:
        with self.replacing(name) as handle:
            handle.write(data)

    def sync(self) -> None:
        """The renames themselves reach the disk."""
        os.fsync(self.fd)
