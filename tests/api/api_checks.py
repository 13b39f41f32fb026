"""Small shared checks for the API tests: problem+json answers and what the database holds."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from custody.store.models import Request, Wallet
from tests.support.installation import Installation

PROBLEM_JSON = "application/problem+json"


def assert_problem(
    response: httpx.Response, status: int, detail: str | None = None
) -> dict[str, Any]:
    """An RFC 9457 answer with the given status; `detail` must occur in its detail member."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON, response.headers
    body = response.json()
    assert isinstance(body, dict)
    for member in ("type", "title", "status", "detail"):
        assert member in body, body
    assert body["status"] == status
    assert isinstance(body["type"], str)
    assert body["type"]
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    if detail is not None:
        assert detail in body["detail"], body
    return body


def wallet_requests(installation: Installation, wallet_name: str) -> list[Request]:
    """Every request row of one wallet, oldest first."""
    with installation.runtime.db.read() as session:
        query = (
            select(Request)
            .join(Wallet, Wallet.id == Request.wallet_id)
            .where(Wallet.name == wallet_name)
            .order_by(Request.created_at)
        )
        return list(session.execute(query).scalars())


def request_kinds(installation: Installation, request_id: str) -> list[str]:
    """The ledger entry kinds that name one request, in ledger order."""
    return [
        e["kind"] for e in installation.ledger_entries() if e["data"].get("request") == request_id
    ]
