"""`custody ledger export DIR`: the files an auditor verifies with their own tools.

entries.jsonl      one RFC 8785 entry per line, exactly the leaf bytes, up to the checkpoint
checkpoint         the newest signed note (C2SP tlog-checkpoint in a signed-note envelope)
checkpoints.jsonl  every checkpoint up to it, as {"tree_size", "note"} lines
verifier-key       the note verifier key of the ledger key, one line
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.errors import NotFound
from custody.ledger.checkpoints import latest_checkpoint
from custody.store.models import LedgerCheckpoint, LedgerEntry

BATCH = 10_000


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    tree_size: int
    checkpoints: int


def export(
    session: Session,
    directory: Path,
    verifier_key: str,
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    latest = latest_checkpoint(session)
    if latest is None:
        raise NotFound("no checkpoint yet: run `custody ledger checkpoint` first")
    directory.mkdir(parents=True, exist_ok=True)
    written = _write_entries(session, directory / "entries.jsonl", latest.tree_size, progress)
    history = (
        session.execute(
            select(LedgerCheckpoint)
            .where(LedgerCheckpoint.tree_size <= latest.tree_size)
            .order_by(LedgerCheckpoint.tree_size)
        )
        .scalars()
        .all()
    )
    _atomic_write(
        directory / "checkpoints.jsonl",
        "".join(
            json.dumps({"tree_size": cp.tree_size, "note": cp.note}) + "\n" for cp in history
        ).encode(),
    )
    _atomic_write(directory / "checkpoint", latest.note.encode())
    _atomic_write(directory / "verifier-key", (verifier_key + "\n").encode())
    return ExportResult(directory, written, len(history))


def _write_entries(
    session: Session, path: Path, size: int, progress: Callable[[int], None] | None
) -> int:
    temporary = path.with_suffix(".tmp")
    written = 0
    with temporary.open("wb") as handle:
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
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
    return written


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_bytes(data)
    temporary.replace(path)
