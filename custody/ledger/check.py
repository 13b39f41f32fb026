"""`custody ledger verify` against the database: the same checks an auditor runs on an export.

Every leaf is recomputed from the stored entry bytes (the stored leaf hashes and subtree nodes are
compared, never trusted), the root is recomputed at the size of every stored checkpoint, every
checkpoint's signature is checked with the ledger key current at its size (the keys of
`ledger_keys`, the current one from the HSM, or a verifier key the auditor supplies; rotations
are held to the rules of custody.ledger.verify.KeySchedule), and earlier checkpoints kept outside
the database (a trusted file, a witness) must still match: this catches edited, deleted,
reordered or truncated entries, rolled-back or forked logs and checkpoints signed by another key.
Recomputing the roots of consecutive checkpoints from one sequence of entries proves their
consistency.

Entries after the newest checkpoint are the unsigned tail: nothing proves them, and removing
checkpoints turns signed history back into an unsigned tail. The TailRule says how much of it is
normal (docs/ledger.md, "Unsigned entries").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger import service
from custody.ledger.nodes import MissingNode, NodeCache, SessionNodes
from custody.ledger.tree import root as stored_root
from custody.ledger.verify import (
    Checkpoint,
    KeySchedule,
    Report,
    VerificationError,
    VerifierKey,
    check_entry,
    leaf_hash,
    parse_checkpoint_at,
    verify_log,
)
from custody.store.models import LedgerCheckpoint, LedgerEntry

BATCH = 5_000


@dataclass(frozen=True)
class LedgerReport:
    size: int
    root: bytes
    checkpoints_checked: int
    fault: str | None
    signed_size: int = 0
    """The largest verified checkpoint's size: entries from here on are the unsigned tail."""

    @property
    def ok(self) -> bool:
        return self.fault is None

    @property
    def unsigned(self) -> int:
        return self.size - self.signed_size


# The checkpointer signs every `checkpoint_interval_seconds` while `serve` or `worker` runs; an
# entry still unsigned after this many intervals (and at least MIN_GRACE) was not left by it.
GRACE_INTERVALS = 10
MIN_GRACE = timedelta(seconds=60)


def unsigned_grace(checkpoint_interval_seconds: float) -> timedelta:
    return max(MIN_GRACE, timedelta(seconds=GRACE_INTERVALS * checkpoint_interval_seconds))


@dataclass(frozen=True)
class TailRule:
    """How many entries past the newest verified checkpoint `verify` accepts.

    Without `allow`, a ledger with entries and no checkpoint fails, and so does a tail whose
    oldest entry is older than `max_age` at `now`: checkpoints stopped being signed, or were
    removed so that what they covered could be rewritten.
    """

    allow: bool = False
    max_age: timedelta = MIN_GRACE
    now: datetime | None = None


def check(
    session: Session,
    key: VerifierKey | KeySchedule | None = None,
    *,
    external: Sequence[Checkpoint] = (),
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
    check_format: bool = True,
    tail: TailRule = TailRule(),
) -> LedgerReport:
    keys = KeySchedule.single(key) if isinstance(key, VerifierKey) else key
    try:
        checkpoints = [*_stored_checkpoints(session, keys), *external] if keys else list(external)
    except VerificationError as exc:
        return LedgerReport(0, b"", 0, str(exc))
    columns_fault: list[str] = []
    report = verify_log(
        _entries(session, columns_fault),
        checkpoints,
        progress=progress,
        workers=workers,
        check_format=check_format,
        schedule=keys,
    )
    fault = columns_fault[0] if columns_fault else (report.faults[0] if report.faults else None)
    fault = fault or _head_fault(session, report) or _nodes_fault(session, report)
    fault = fault or _tail_fault(session, report, tail)
    return LedgerReport(
        report.size, report.root, report.checkpoints_checked, fault, report.signed_size
    )


def _entries(session: Session, faults: list[str]) -> Iterator[bytes]:
    """Entry bytes in index order; a stored column that disagrees with its entry stops the walk."""
    last = -1
    while True:
        rows = (
            session.execute(
                select(LedgerEntry)
                .where(LedgerEntry.index > last)
                .order_by(LedgerEntry.index)
                .limit(BATCH)
            )
            .scalars()
            .all()
        )
        for row in rows:
            # A malformed entry is named by verify_log; here only well-formed ones are compared.
            fault = _column_fault(row) if check_entry(row.entry, row.index) is None else None
            if fault is not None:
                faults.append(fault)
                return
            yield row.entry
        if len(rows) < BATCH:
            return
        last = rows[-1].index


def _column_fault(row: LedgerEntry) -> str | None:
    body = json.loads(row.entry)
    if body["kind"] != row.kind or body["actor"] != row.actor:
        return f"index {row.index}: kind or actor column differs from the entry"
    if leaf_hash(row.entry) != row.leaf_hash:
        return f"index {row.index}: stored leaf hash does not match the entry"
    return None


def _stored_checkpoints(session: Session, keys: KeySchedule) -> list[Checkpoint]:
    parsed = []
    for row in session.execute(
        select(LedgerCheckpoint).order_by(LedgerCheckpoint.tree_size)
    ).scalars():
        try:
            cp = parse_checkpoint_at(row.note, keys)
        except VerificationError as exc:
            raise VerificationError(f"stored checkpoint at size {row.tree_size}: {exc}") from None
        if cp.size != row.tree_size or cp.root != row.root_hash:
            raise VerificationError(
                f"stored checkpoint at size {row.tree_size}: columns differ from its signed note"
            )
        parsed.append(cp)
    return parsed


def _head_fault(session: Session, report: Report) -> str | None:
    head = service.size(session)
    if head != report.size:
        return (
            f"the ledger head says {head} entries but {report.size} are stored "
            f"(entry {report.size} is missing or the tail was cut)"
        )
    return None


def _tail_fault(session: Session, report: Report, rule: TailRule) -> str | None:
    if rule.allow or report.unsigned <= 0:
        return None
    if report.signed_size == 0:
        return (
            f"no signed checkpoint covers any of the {report.size} entries (sign one with "
            "`custody ledger checkpoint`; pass --allow-unsigned-tail to accept an unsigned ledger)"
        )
    oldest = _entry_time(session, report.signed_size)
    now = rule.now or datetime.now(UTC)
    if oldest is not None and now - oldest <= rule.max_age:
        return None
    waited = "an unknown time" if oldest is None else f"{int((now - oldest).total_seconds())} s"
    first, last = report.signed_size, report.size - 1
    span = f"entry {last}" if first == last else f"entries {first} to {last}"
    return (
        f"{span}: not covered by a signed checkpoint for {waited} (more than the "
        f"{int(rule.max_age.total_seconds())} s allowed); checkpoints stopped or were removed "
        "(sign one with `custody ledger checkpoint`, or pass --allow-unsigned-tail)"
    )


def _entry_time(session: Session, index: int) -> datetime | None:
    """The time the entry itself states (what an auditor sees), not the column beside it; None
    when unreadable (possible with --hashes-only), which counts as too old."""
    entry = session.execute(
        select(LedgerEntry.entry).where(LedgerEntry.index == index)
    ).scalar_one()
    try:
        moment = datetime.fromisoformat(json.loads(entry)["time"])
    except (ValueError, KeyError, TypeError):
        return None
    return moment if moment.tzinfo is not None else None


def _nodes_fault(session: Session, report: Report) -> str | None:
    """Proofs are served from stored subtrees: they must give the recomputed root too."""
    if report.size == 0:
        return None
    try:
        # A private cache: verification must read what is stored now, not what this process saw.
        served = stored_root(SessionNodes(session, NodeCache()), report.size)
    except MissingNode as exc:
        return f"stored Merkle subtrees are incomplete: {exc.message}"
    if served != report.root:
        return "stored Merkle subtrees do not match the entries (proofs would be wrong)"
    return None
