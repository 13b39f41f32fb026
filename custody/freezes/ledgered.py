"""The freezes and lifts the ledger records, read from the entries' own bytes (issue 9).

A freeze is a row, and a database insider can delete it, mark it lifted or narrow its scope. Its
`signing.frozen` entry cannot be taken back (the ledger refuses UPDATE and DELETE, and its
HSM-signed checkpoints show a rewritten one): a freeze the ledger records stays in force for the
signer until the ledger records its lift (`signing.unfrozen`, written only by
custody.freezes.service.lift). The breakers count from the ledger for the same reason.

Freezes are few, so every signing.* entry of these kinds is read on each look, through the
`(kind, time)` index; each entry's bytes are parsed once per process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from sqlalchemy.orm import Session

from custody.freezes import repository
from custody.ledger import service as ledger
from custody.ledger.events import EventKind

FROZEN, UNFROZEN = EventKind.SIGNING_FROZEN.value, EventKind.SIGNING_UNFROZEN.value
_KINDS = (FROZEN, UNFROZEN)


@dataclass(frozen=True)
class Recorded:
    """One `signing.frozen` or `signing.unfrozen` entry: the freeze it names and its scope."""

    freeze_id: int
    wallet: str | None
    """The wallet's name for a wallet freeze; None for the whole installation."""
    reason: str
    source: str
    actor: str
    time: str
    """The entry's RFC 3339 time."""


def active(session: Session) -> dict[int, Recorded]:
    """Every freeze the ledger records with no lift after it, by freeze id (this transaction's
    own entries included)."""
    found: dict[int, Recorded] = {}
    for kind, entry in _entries(session):
        recorded = _parse(entry)
        if recorded is None:
            continue
        if kind == FROZEN:
            found[recorded.freeze_id] = recorded
        else:
            found.pop(recorded.freeze_id, None)
    return found


def highest_id(session: Session) -> int:
    """The highest freeze id the ledger has ever named (0 for none): a new freeze takes a higher
    one, so it never shares an id with a freeze whose row an insider deleted."""
    highest = 0
    for kind, entry in _entries(session):
        recorded = _parse(entry) if kind == FROZEN else None
        if recorded is not None:
            highest = max(highest, recorded.freeze_id)
    return highest


def last_lift(session: Session, *, source: str, wallet: str | None) -> datetime | None:
    """When the ledger last recorded the lift of a freeze by `source` of this scope."""
    for entry in repository.ledger_entries_newest_first(session, UNFROZEN):
        recorded = _parse(entry)
        if recorded is not None and recorded.source == source and recorded.wallet == wallet:
            return datetime.strptime(recorded.time, "%Y-%m-%dT%H:%M:%S.%f%z")
    return None


def denied_count(session: Session, client_id: str, since: datetime) -> int:
    """Requests of this client that the policy denied at intake (their `request.created` entry
    moved them to `rejected`, which only a denial does), recorded after `since`; the request
    intake is deciding now included (its entry is this transaction's)."""
    actor = f"client:{client_id}"
    created = EventKind.REQUEST_CREATED.value
    stored = repository.entries_by(session, created, actor, since)
    mine = [entry for _, time, entry in ledger.pending_of(session, (created,)) if time > since]
    return sum(1 for entry in [*stored, *mine] if _created_by(entry) == (actor, "rejected"))


@lru_cache(maxsize=16384)
def _created_by(entry: bytes) -> tuple[object, object]:
    """(actor, status it moved the request to) of a `request.created` entry, parsed once per
    process: intake counts a client's entries of the whole window on every request."""
    body = json.loads(entry)
    data = body.get("data")
    return body.get("actor"), data.get("to") if isinstance(data, dict) else None


def _entries(session: Session) -> list[tuple[str, bytes]]:
    mine = [(kind, entry) for kind, _, entry in ledger.pending_of(session, _KINDS)]
    return repository.ledger_entries(session, _KINDS) + mine


_parsed: dict[bytes, Recorded | None] = {}
_PARSED_LIMIT = 10_000


def _parse(entry: bytes) -> Recorded | None:
    if entry in _parsed:
        return _parsed[entry]
    body = json.loads(entry)
    data = body.get("data")
    recorded: Recorded | None = None
    if isinstance(data, dict) and isinstance(data.get("freeze"), int):
        wallet = data.get("wallet")
        # a lift's reason is why it was lifted; the freeze's own is `frozen_for`
        reason = data.get("frozen_for") if body.get("kind") == UNFROZEN else data.get("reason")
        recorded = Recorded(
            freeze_id=data["freeze"],
            wallet=wallet if isinstance(wallet, str) else None,
            reason=str(reason),
            source=str(data.get("source")),
            actor=str(body.get("actor")),
            time=str(body.get("time")),
        )
    if len(_parsed) >= _PARSED_LIMIT:
        _parsed.clear()
    _parsed[entry] = recorded
    return recorded
