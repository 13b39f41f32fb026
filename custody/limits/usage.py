"""What a limit has used: signed and in-flight requests in its window and scope.

The caller holds the ledger head lock (`ledger.lock`): every writer takes it, so the usage read
here includes every committed request and no concurrent request can slip in before the caller's
commits (invariant 5, on SQLite and PostgreSQL alike).

Two ways of counting. Intake and the policy simulator count the rows as they are (`facts`,
`amount`, `status`, `signed_at`): cheap, and nothing is signed on their word. The signer's
re-check (custody.signing.pipeline) passes `believe`: each request counted is then judged on
what its client's signed body yields (custody.signing.evidence), and a request counts as signed
when the append-only ledger has its `request.signed` entry in the window, or as in flight when
its last status entry in the window leaves it pending approval, approved or signing, whatever its
row says now (issue 9: a database insider must not free room under a limit by editing rows).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Protocol

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import Session

from custody.errors import CustodyError
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.policy import RequestFacts
from custody.policy.context import EvaluationContext
from custody.policy.limits import (
    CompiledLimit,
    LimitCheck,
    LimitUsage,
    check_limit,
    compile_limit,
)
from custody.policy.limits_schema import Limit
from custody.requests.states import RESERVES_LIMIT
from custody.store.models import LedgerEntry, Request

IN_FLIGHT = tuple(s.value for s in RESERVES_LIMIT)
# Bound parameters per IN (...) list: SQLite allows 32766, PostgreSQL 65535; stay far below.
_CHUNK = 500


@dataclass(frozen=True)
class Stored:
    """The columns of a counted request that its evidence is made of (custody.signing.evidence)."""

    id: str
    client_id: str
    idempotency_key: str
    client_body: bytes | None
    client_token: str | None
    evm_fill: str | None


class Believe(Protocol):
    """The facts a counted request's own evidence yields; raises CountedEvidenceRefused when
    that evidence is missing or does not hold."""

    def __call__(self, session: Session, stored: Stored) -> RequestFacts: ...


class CountedEvidenceRefused(CustodyError):
    """A request a limit counts has no evidence that holds: the limit cannot be judged, and
    nothing it judges may be signed (the signer freezes: custody.freezes.breakers)."""

    status = 500
    title = "Counted request's evidence refused"
    slug = "counted-evidence-refused"

    def __init__(self, request_id: str, detail: str, limit_id: str | None = None) -> None:
        where = f" (counted by limit {limit_id})" if limit_id else ""
        super().__init__(f"request {request_id}{where}: {detail}")
        self.request_id = request_id
        self.detail = detail
        self.limit_id = limit_id


def check(
    session: Session,
    limit: Limit,
    facts: RequestFacts,
    context: EvaluationContext,
    exclude_request: str | None,
    *,
    believe: Believe | None = None,
) -> LimitCheck:
    """Whether `facts` still fit `limit`; `exclude_request` is the request itself on re-check."""
    return check_limit(
        limit, usage(session, limit, context, exclude_request, believe=believe), facts.amount
    )


def usage(
    session: Session,
    limit: Limit,
    context: EvaluationContext,
    exclude_request: str | None,
    *,
    believe: Believe | None = None,
) -> LimitUsage:
    """Signed and in-flight requests in the window that the limit's scope covers.

    A request reserves its amount while it is live (pending approval, approved, signing) and
    keeps counting once signed; rejection, expiry, cancellation and failure release it, since
    only live statuses are counted.
    """
    now = context.require_now("a limit window")
    since = now - timedelta(seconds=limit.window)
    compiled = compile_limit(limit)
    if believe is not None:
        return _believed_usage(session, compiled, since, exclude_request, believe)
    # In-flight requests hold their reservation however long they wait; signed ones count from
    # when they were signed (signed_at, set once by the lifecycle), so a request that waited
    # longer than the window for approvals still counts in the window it was signed in.
    query = select(Request.id, Request.facts, Request.amount).where(_counted_rows(since))
    assets = limit.scope_or_short.assets
    if assets is not None:
        query = query.where(Request.asset.in_(assets))
    amount = count = 0
    for request_id, stored_facts, stored_amount in session.execute(query):
        if request_id == exclude_request or stored_facts is None:
            continue
        if compiled.applies(_facts_of(stored_facts)):
            amount += int(stored_amount)
            count += 1
    return LimitUsage(amount=amount, count=count)


@lru_cache(maxsize=16384)
def _facts_of(column: str) -> RequestFacts:
    """Parsed once per process per exact text: every intake counts every request of the window
    again, and validating each one's JSON made a POST's cost grow with the window (about 0.14 ms
    a request measured). Keyed by the text, an edited row is parsed afresh; the facts are
    frozen, so sharing them is safe."""
    return RequestFacts.from_json(column)


def _counted_rows(since: datetime) -> ColumnElement[bool]:
    return or_(
        Request.status.in_(IN_FLIGHT),
        # Signed, broadcast, confirmed, and failed after signing too: its signature was
        # released, so its amount may have moved (a reverted transaction still counts).
        and_(Request.signed_at.is_not(None), Request.signed_at >= since),
    )


def _believed_usage(
    session: Session,
    compiled: CompiledLimit,
    since: datetime,
    exclude_request: str | None,
    believe: Believe,
) -> LimitUsage:
    """The signer's count: which requests count comes from the rows and the ledger together
    (either one naming a request is enough, so an edited row only ever adds), and what each
    counts for from its own evidence. No row column narrows the set (not even `asset`): the
    scope is judged on the facts the evidence yields."""
    ids = _counted_ids(session, since)
    if exclude_request is not None:
        ids.discard(exclude_request)
    rows = {row.id: row for row in _stored(session, sorted(ids))}
    amount = count = 0
    for request_id in sorted(ids):
        row = rows.get(request_id)
        if row is None:
            raise CountedEvidenceRefused(
                request_id,
                "the ledger counts it (signed, claimed or waiting), but its request row is gone",
                compiled.id,
            )
        try:
            facts = believe(session, row)
        except CountedEvidenceRefused as exc:
            raise CountedEvidenceRefused(request_id, exc.detail, compiled.id) from None
        if compiled.applies(facts):
            amount += facts.amount.value
            count += 1
    return LimitUsage(amount=amount, count=count)


def counted_since(session: Session, since: datetime) -> list[Stored]:
    """The evidence of every request the signer would count in a window starting at `since`
    (for warming its memo before it takes the lock: custody.signing.evidence.warm)."""
    return list(_stored(session, sorted(_counted_ids(session, since))))


def _counted_ids(session: Session, since: datetime) -> set[str]:
    ids = set(session.execute(select(Request.id).where(_counted_rows(since))).scalars())
    return ids | in_ledger_since(session, since)


# The entries that move a request into a status that reserves room under a limit, or out of one
# (every status change is one entry, custody.requests.lifecycle, whose `to` names the status).
_MOVES = tuple(
    kind.value
    for kind in (
        EventKind.REQUEST_CREATED,
        EventKind.REQUEST_PENDING_APPROVAL,
        EventKind.REQUEST_APPROVED,
        EventKind.REQUEST_SIGNING,
        EventKind.REQUEST_SIGNED,
        EventKind.REQUEST_FAILED,
        EventKind.REQUEST_REJECTED,
        EventKind.REQUEST_CANCELLED,
        EventKind.REQUEST_EXPIRED,
    )
)


def in_ledger_since(session: Session, since: datetime) -> set[str]:
    """Requests the ledger shows signed at or after `since` (`request.signed`), or live: whose
    last status entry since then leaves them pending approval, approved or claimed (`signing`),
    whatever the row says now. A waiting request reserves room until the ledger records its end
    (rejected, cancelled, expired, failed); a claimed one may still have its signature released
    by the worker holding it. An insider who marks a waiting row `cancelled` frees nothing.

    The ledger refuses UPDATE and DELETE, and its HSM-signed checkpoints show a rewritten one;
    `kind` and `time` are columns written with the entry (ix_ledger_entries_kind_time keeps this
    read to the window). The request id and status are read from the entry's own bytes.
    """
    entries = session.execute(
        select(LedgerEntry.kind, LedgerEntry.entry)
        .where(LedgerEntry.kind.in_(_MOVES), LedgerEntry.time >= since)
        .order_by(LedgerEntry.index)
    )
    # and what this transaction appended (a batch's earlier claims), written only at commit
    mine = [
        (kind, entry) for kind, time, entry in ledger.pending_of(session, _MOVES) if time >= since
    ]
    signed: set[str] = set()
    status: dict[str, str | None] = {}
    for kind, entry in [*entries, *mine]:
        request_id, to = _move_of(entry)
        if request_id is None:
            continue
        status[request_id] = to
        if kind == EventKind.REQUEST_SIGNED.value:
            signed.add(request_id)
    return signed | {request_id for request_id, to in status.items() if to in IN_FLIGHT}


# The request each ledger entry names and the status it moved it to, by the entry's exact bytes
# (they hold its index and time, so no two entries share a key, and a rewritten entry is parsed
# afresh): every claim reads the window's entries again, and parsing them was most of what
# counting from the ledger cost.
_named: dict[bytes, tuple[str | None, str | None]] = {}
_NAMED_LIMIT = 100_000


def _move_of(entry: bytes) -> tuple[str | None, str | None]:
    if entry in _named:
        return _named[entry]
    data = json.loads(entry).get("data")
    found = data.get("request") if isinstance(data, dict) else None
    to = data.get("to") if isinstance(data, dict) else None
    move = (found if isinstance(found, str) else None, to if isinstance(to, str) else None)
    if len(_named) >= _NAMED_LIMIT:
        _named.clear()
    _named[entry] = move
    return move


def _stored(session: Session, ids: list[str]) -> Iterable[Stored]:
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        query = select(
            Request.id,
            Request.client_id,
            Request.idempotency_key,
            Request.client_body,
            Request.client_token,
            Request.evm_fill,
        ).where(Request.id.in_(chunk))
        for row in session.execute(query):
            yield Stored(*row)
