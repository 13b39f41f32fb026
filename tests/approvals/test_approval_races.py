"""An approval in flight must not overturn a rejection or cancellation committed meanwhile.

On PostgreSQL the device-key route reads the request, verifies the signature, then records under
the ledger lock; a session would keep the object it loaded before waiting for the lock (and so a
stale `pending_approval`) unless the locked read refreshes it. Bob's approval is held after its
first read until Alice's rejection (or the client's cancellation) has committed; events, not
sleeps, order the two.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient as HttpClient

from custody.approvals import service
from custody.signing.worker import SignerWorker
from tests.approvals.conftest import Device, post_approval
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, WalletInfo

ONE_APPROVAL = """
version: 1
rules:
  - id: one
    match: {{type: withdrawal, wallets: [{wallet}]}}
    action: {{require_approvals: {{count: 1, group: treasury}}}}
  - {{id: allow-all, match: {{type: withdrawal}}, action: allow}}
"""


@pytest.mark.parametrize("decided_by", ["rejection", "cancellation"])
def test_an_approval_in_flight_cannot_overturn_a_decision(
    api: Api,
    http: HttpClient,
    wallet: WalletInfo,
    make_approver: Callable[..., Device],
    installation: Installation,
    signer: SignerWorker,
    monkeypatch: pytest.MonkeyPatch,
    decided_by: str,
) -> None:
    if installation.backend == "sqlite":
        pytest.skip("SQLite writers hold the database lock from BEGIN: no stale interleaving")
    installation.apply_policy(ONE_APPROVAL.format(wallet=wallet.name))
    try:
        alice, bob = make_approver("treasury"), make_approver("treasury")
        req = api.create(withdrawal(wallet.name, nonce=0)).json()
        digest = req["payload"]["digest"]
        original = service.record
        bob_has_read, decision_committed = threading.Event(), threading.Event()

        def held_for_bob(session: Any, **kwargs: Any) -> service.ApprovalOutcome:
            if kwargs["approver"].name == bob.name:
                # between bob's first read and his locked read
                bob_has_read.set()
                assert decision_committed.wait(timeout=30), "the decision never committed"
            return original(session, **kwargs)

        monkeypatch.setattr(service, "record", held_for_bob)
        answers: dict[str, httpx.Response] = {}

        def bob_approves() -> None:
            answers["bob"] = post_approval(http, req["id"], bob.body(req["id"], digest))

        thread = threading.Thread(target=bob_approves)
        thread.start()
        try:
            assert bob_has_read.wait(timeout=30), "bob's approval never reached the locked read"
            if decided_by == "rejection":
                decided = post_approval(http, req["id"], alice.body(req["id"], digest, "reject"))
            else:
                decided = api.call("POST", f"/v1/requests/{req['id']}/cancel")
        finally:
            decision_committed.set()  # also when the decision failed: bob must not wait forever
            thread.join(timeout=60)
        assert not thread.is_alive()
        assert decided.status_code == 200
        assert answers["bob"].status_code == 409, answers["bob"].text
        assert signer.drain() == 0
        final = api.get(req["id"]).json()
        assert final["status"] == ("rejected" if decided_by == "rejection" else "cancelled")
        assert "result" not in final
    finally:
        installation.allow_all_policy()
