from __future__ import annotations

from typing import Any

from tests.api.conftest import api, http, signer, wallet  # noqa: F401  (shared fixtures)
from tests.approvals.conftest import make_approver, quorum_wallet  # noqa: F401
from tests.support.api import Api
from tests.support.installation import Installation


def assert_not_signed(installation: Installation, trading: Api, request_id: str) -> dict[str, Any]:
    """No signature was released, nor was the request ever claimed for signing."""
    view = trading.get(request_id).json()
    assert view["status"] != "signed", view
    assert "result" not in view
    kinds = [
        e["kind"] for e in installation.ledger_entries() if e["data"].get("request") == request_id
    ]
    assert "request.signing" not in kinds
    assert "request.signed" not in kinds
    return view
