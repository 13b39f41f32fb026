"""From ledger entries to queued deliveries: the outbox's reading side.

Every request status change commits with its ledger entry (invariant 3), so the ledger already
is a transactional outbox. One pass reads the entries after the cursor, in order, and inserts
the deliveries they call for in the same transaction that advances the cursor: a crash before
commit redoes the pass, a crash after it never sees those entries again, and the unique
(ledger_index, target) makes even a replayed pass add nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from custody.ledger.events import EventKind
from custody.policy.stored import StoredDecision, read_decision
from custody.requests import lifecycle
from custody.requests.states import RequestStatus
from custody.store.base import utcnow
from custody.store.database import Database
from custody.store.models import LedgerEntry, Request
from custody.views.requests import request_view
from custody.webhooks import repository

BATCH = 500
FREEZE_EVENTS = frozenset(
    {
        EventKind.SIGNING_FROZEN,
        EventKind.SIGNING_UNFROZEN,
        EventKind.SIGNING_UNFREEZE_REQUESTED,
    }
)


def status_after(kind: str, data: dict[str, Any]) -> str | None:
    """The request's status after this entry, or None when the entry changes nothing worth
    telling: every status change is a lifecycle entry; an approval that did not complete the
    quorum is news for the client too (the request still waits)."""
    if kind == EventKind.APPROVAL_ADDED:
        return RequestStatus.PENDING_APPROVAL.value
    return lifecycle.status_after(kind, data)


def required_groups(decision: StoredDecision) -> list[dict[str, Any]]:
    """[{group, count}] a require_approvals decision asks for (`group`, or each of `all_of`)."""
    return [{"group": q.group, "count": q.count} for q in decision.quorums()]


def dispatch_once(db: Database, batch: int = BATCH) -> int:
    """One pass over at most `batch` entries; returns how many deliveries it queued."""
    with db.write() as session:
        cursor = repository.locked_cursor(session)
        entries = repository.entries_from(session, cursor.next_index, batch)
        if not entries:
            return 0
        rows = list(_deliveries(session, entries, utcnow()))
        repository.insert_deliveries(session, rows)
        cursor.next_index = entries[-1].index + 1
        return len(rows)


def dispatch_all(db: Database, batch: int = BATCH) -> int:
    """Passes until the cursor has caught up with the ledger."""
    total = 0
    while True:
        with db.read() as session:
            behind = repository.entries_from(session, repository.cursor_position(session), 1)
        if not behind:
            return total
        total += dispatch_once(db, batch)


def _deliveries(
    session: Session, entries: list[LedgerEntry], now: datetime
) -> Iterator[dict[str, Any]]:
    changes: list[tuple[LedgerEntry, str, str]] = []
    for entry in entries:
        data = json.loads(entry.entry).get("data", {})
        if entry.kind in FREEZE_EVENTS:
            yield from _freeze_rows(session, entry, data, now)
            continue
        status = status_after(entry.kind, data)
        request_id = data.get("request")
        if status is not None and isinstance(request_id, str):
            changes.append((entry, request_id, status))
    if not changes:
        return
    context = repository.requests_with_context(session, (c[1] for c in changes))
    for entry, request_id, status in changes:
        if request_id not in context:
            continue
        request, wallet_name, client_url = context[request_id]
        if client_url:
            body = request_view(request, wallet_name) | {
                "event": entry.kind,
                "ledger_index": entry.index,
                "status": status,
                "http_request_id": request.http_request_id,
            }
            yield _row(entry.index, f"client:{request.client_id}", client_url, body, now)
        if status == "pending_approval" and entry.kind != EventKind.APPROVAL_ADDED:
            yield from _group_rows(session, entry, request, now)


def _group_rows(
    session: Session, entry: LedgerEntry, request: Request, now: datetime
) -> Iterator[dict[str, Any]]:
    quorums = required_groups(read_decision(request.policy_decision))
    urls = repository.group_urls(session, (q["group"] for q in quorums))
    for quorum in quorums:
        url = urls.get(quorum["group"])
        if url is None:
            continue
        body = {
            "event": "approvals.waiting",
            "ledger_index": entry.index,
            "request": request.id,
            "summary": request.summary,
            "group": quorum["group"],
            "required_approvals": quorums,
            "expires_at": _rfc3339(request.expires_at),
            "http_request_id": request.http_request_id,
        }
        yield _row(entry.index, f"group:{quorum['group']}", url, body, now)


def _freeze_rows(
    session: Session, entry: LedgerEntry, data: dict[str, Any], now: datetime
) -> Iterator[dict[str, Any]]:
    """A freeze or a lift concerns every client (their requests wait, or go on) and every
    group; a lift waiting for the governance quorum concerns the groups it waits for."""
    body = {"event": entry.kind, "ledger_index": entry.index} | data
    if entry.kind == EventKind.SIGNING_UNFREEZE_REQUESTED:
        wanted = [q["group"] for q in data.get("required_approvals", [])]
        groups = repository.group_urls(session, wanted)
    else:
        groups = repository.every_group_url(session)
        for client_id, url in sorted(repository.client_urls(session).items()):
            yield _row(entry.index, f"client:{client_id}", url, body, now)
    for group, url in sorted(groups.items()):
        yield _row(entry.index, f"group:{group}", url, body, now)


def _row(index: int, target: str, url: str, body: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "ledger_index": index,
        "target": target,
        "url": url,
        "body": json.dumps(body, sort_keys=True, separators=(",", ":")).encode(),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": None,
        "created_at": now,
        "delivered_at": None,
    }


def _rfc3339(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
