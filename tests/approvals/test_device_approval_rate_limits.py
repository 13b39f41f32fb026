"""A device-key approval over the API spends its approver's rate limit (the one the approver app
charges), once its signature verified: a refused one records nothing, and other approvers, or a
forger naming this one, are not held back by it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient as HttpClient

from custody.app import create_app
from custody.http.ratelimit import Kind, Rate, RateLimits
from tests.approvals.conftest import Device, post_approval
from tests.http.test_http_ratelimit import FakeClock
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, WalletInfo

ROOMY = Rate(1.0, 1_000)


def test_each_approvers_device_approvals_are_limited(
    installation: Installation,
    quorum_wallet: WalletInfo,
    make_approver: Callable[..., Device],
) -> None:
    clock = FakeClock()
    rates = {Kind.ADDRESS: ROOMY, Kind.SIGN_IN: ROOMY, Kind.CLIENT: ROOMY}
    limits = RateLimits(rates=rates | {Kind.APPROVER: Rate(0.1, 1)}, clock=clock)
    alice, bob = make_approver("treasury"), make_approver("treasury")
    with HttpClient(create_app(installation.runtime, run_worker=False, limits=limits)) as http:
        api = Api(http.request, installation.client())
        first, second = (api.create(withdrawal(quorum_wallet.name, nonce=n)).json() for n in (0, 1))
        assert first["status"] == second["status"] == "pending_approval"

        def approve(device: Device, request: dict[str, Any]) -> int:
            body = device.body(request["id"], request["payload"]["digest"])
            return post_approval(http, request["id"], body).status_code

        assert approve(alice, first) == 200
        before = installation.counts()
        refused = post_approval(
            http, second["id"], alice.body(second["id"], second["payload"]["digest"])
        )
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "10"
        assert refused.json()["detail"].endswith("(rate limit: approver)")
        assert installation.counts() == before  # no approval, no ledger entry
        assert approve(bob, second) == 200  # bob has a bucket of his own
        clock.advance(10)
        # a forged approval in alice's name does not verify, so it spends nothing of hers
        forged = bob.body(second["id"], second["payload"]["digest"]).replace(
            bob.name.encode(), alice.name.encode()
        )
        assert post_approval(http, second["id"], forged).status_code == 401
        assert approve(alice, second) == 200
        assert api.get(second["id"]).json()["status"] == "approved"
