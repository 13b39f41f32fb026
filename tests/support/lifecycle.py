"""Reading request histories back from the ledger, written from DESIGN.md's states.

A test that drives requests through custody calls `assert_histories_hold` at the end: each of its
requests' status changes, read from the ledger alone, must form one unbroken walk through the
lifecycle table that ends at the status stored in its row.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select

from custody.requests.states import INITIAL, TRANSITIONS, RequestStatus
from custody.store.models import LedgerEntry, Request
from tests.support.installation import Installation


def histories(installation: Installation) -> dict[str, list[dict[str, Any]]]:
    """request id -> its status-change entries (`data` with `from` and `to`), in ledger order."""
    found: dict[str, list[dict[str, Any]]] = {}
    with installation.runtime.db.read() as session:
        rows = session.execute(
            select(LedgerEntry.kind, LedgerEntry.entry)
            .where(LedgerEntry.kind.like("request.%"))
            .order_by(LedgerEntry.index)
        )
        for kind, raw in rows:
            data = json.loads(raw)["data"]
            assert {"request", "from", "to", "reason"} <= data.keys(), (kind, data)
            expected_kind = "request.created" if data["from"] is None else f"request.{data['to']}"
            assert kind == expected_kind, (kind, data)
            found.setdefault(data["request"], []).append(data)
    return found


def assert_histories_hold(installation: Installation, request_ids: Iterable[str]) -> None:
    """Check these requests (the installation is shared: other tests' rows are theirs)."""
    ids = set(request_ids)
    walks = histories(installation)
    with installation.runtime.db.read() as session:
        stored = {
            row.id: row.status
            for row in session.execute(
                select(Request.id, Request.status).where(Request.id.in_(ids))
            )
        }
    assert stored.keys() == ids, "a request that was never stored"
    for request_id in ids:
        steps = walks.get(request_id)
        assert steps, f"{request_id} has no history in the ledger"
        first = steps[0]
        assert first["from"] is None, steps
        assert RequestStatus(first["to"]) in INITIAL, steps
        for before, after in itertools.pairwise(steps):
            assert after["from"] == before["to"], (request_id, steps)
            legal = TRANSITIONS[RequestStatus(before["to"])]
            assert RequestStatus(after["to"]) in legal, (request_id, steps)
        assert steps[-1]["to"] == stored[request_id], (request_id, steps, stored[request_id])
