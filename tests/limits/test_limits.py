"""Velocity limits (invariant 5): signed and in-flight requests count; releases on rejection,
cancellation and failure; re-checked before signing; and no burst of parallel requests passes
together what each passes alone, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from custody.signing.worker import SignerWorker
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, WalletInfo

UNIT = 1_000


def limit_policy(
    wallet: str, *, max_amount: int, on_exceed: str = "deny", max_count: int | None = None
) -> str:
    count = f", max_count: {max_count}" if max_count else ""
    return f"""
version: 1
limits:
  - {{id: cap, window: 24h, scope: {{wallets: [{wallet}], assets: [ETH]}},
     max_amount: "{max_amount}"{count}, on_exceed: {on_exceed}}}
rules:
  - {{id: allow-all, match: {{type: withdrawal}}, action: allow}}
"""


@pytest.fixture
def capped(installation: Installation, wallet: WalletInfo) -> Iterator[WalletInfo]:
    installation.apply_policy(limit_policy(wallet.name, max_amount=10 * UNIT))
    try:
        yield wallet
    finally:
        installation.allow_all_policy()


def test_requests_pass_until_the_limit_then_are_denied(api: Api, capped: WalletInfo) -> None:
    answers = [
        api.create(withdrawal(capped.name, amount=str(3 * UNIT), nonce=n)).json() for n in range(4)
    ]
    assert [a["status"] for a in answers] == ["approved", "approved", "approved", "rejected"]
    assert answers[0]["policy"]["limits"] == ["cap"]
    assert answers[3]["policy"]["rule"] == "limit:cap"
    assert "exceeds max_amount" in answers[3]["policy"]["reason"]
    # exactly up to the maximum still fits: 9 used, 1 more fits, then nothing
    assert (
        api.create(withdrawal(capped.name, amount=str(UNIT), nonce=10)).json()["status"]
        == "approved"
    )
    assert api.create(withdrawal(capped.name, amount="1", nonce=11)).json()["status"] == "rejected"


def test_signed_requests_keep_counting_and_cancelled_ones_release(
    api: Api, capped: WalletInfo, signer: SignerWorker
) -> None:
    first = api.create(withdrawal(capped.name, amount=str(6 * UNIT), nonce=0)).json()
    assert signer.drain() == 1
    assert api.get(first["id"]).json()["status"] == "signed"
    second = api.create(withdrawal(capped.name, amount=str(4 * UNIT), nonce=1)).json()
    assert second["status"] == "approved"
    refused = api.create(withdrawal(capped.name, amount=str(UNIT), nonce=2)).json()
    assert refused["status"] == "rejected"  # 6 signed + 4 in flight: full
    assert api.call("POST", f"/v1/requests/{second['id']}/cancel").status_code == 200
    again = api.create(withdrawal(capped.name, amount=str(4 * UNIT), nonce=3)).json()
    assert again["status"] == "approved"  # the cancellation released its 4


def test_count_limits_and_escalation_to_approvals(
    api: Api, installation: Installation, wallet: WalletInfo
) -> None:
    installation.apply_policy(
        limit_policy(
            wallet.name,
            max_amount=10**30,
            max_count=2,
            on_exceed="{require_approvals: {count: 2, group: treasury}}",
        )
    )
    try:
        statuses = [api.create(withdrawal(wallet.name, nonce=n)).json() for n in range(3)]
        assert [s["status"] for s in statuses] == ["approved", "approved", "pending_approval"]
        assert statuses[2]["approvals"]["required"] == 2
        assert "exceeds max_count 2" in statuses[2]["policy"]["reason"]
    finally:
        installation.allow_all_policy()


def test_the_signer_rechecks_a_tightened_limit(
    api: Api, installation: Installation, wallet: WalletInfo, signer: SignerWorker
) -> None:
    first = api.create(withdrawal(wallet.name, amount=str(5 * UNIT), nonce=0)).json()
    second = api.create(withdrawal(wallet.name, amount=str(5 * UNIT), nonce=1)).json()
    assert first["status"] == second["status"] == "approved"
    installation.apply_policy(limit_policy(wallet.name, max_amount=7 * UNIT))
    try:
        assert signer.drain() >= 1
        states = {api.get(r["id"]).json()["status"] for r in (first, second)}
        # whichever the signer takes first fits (5 <= 7); the other no longer does (5 + 5 > 7)
        assert states == {"signed", "rejected"}
    finally:
        installation.allow_all_policy()


@pytest.fixture
def live_api(live_url: str, installation: Installation) -> Iterator[Api]:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    with httpx.Client(base_url=live_url, timeout=120, limits=limits) as client:
        yield Api(client.request, installation.client())


def test_parallel_requests_never_pass_a_limit_together(
    live_api: Api, installation: Installation, capped: WalletInfo, signer: SignerWorker
) -> None:
    """60 requests of 1 unit each against a cap of 10, 24 in flight at once: exactly 10 pass."""
    with ThreadPoolExecutor(24) as pool:
        answers = list(
            pool.map(
                lambda n: live_api.create(withdrawal(capped.name, amount=str(UNIT), nonce=n)),
                range(60),
            )
        )
    assert all(a.status_code == 201 for a in answers), {a.status_code for a in answers}
    statuses = [a.json()["status"] for a in answers]
    assert statuses.count("approved") == 10
    assert statuses.count("rejected") == 50
    signer.drain()
    signed = [a.json()["id"] for a in answers if a.json()["status"] == "approved"]
    assert all(live_api.get(i).json()["status"] == "signed" for i in signed)


def test_a_request_counts_in_the_window_it_was_signed_in(
    api: Api, installation: Installation, wallet: WalletInfo, signer: SignerWorker
) -> None:
    """A request that waited longer than the window (created 2 h ago, signed now) still counts
    against a 1 h limit: windows follow signing time, not creation time."""
    from datetime import timedelta

    from sqlalchemy import update

    from custody.store.base import utcnow
    from custody.store.models import Request

    installation.apply_policy(limit_policy(wallet.name, max_amount=10 * UNIT).replace("24h", "1h"))
    try:
        old = api.create(withdrawal(wallet.name, amount=str(8 * UNIT), nonce=0)).json()
        assert old["status"] == "approved"
        with installation.runtime.db.write() as session:
            session.execute(
                update(Request)
                .where(Request.id == old["id"])
                .values(created_at=utcnow() - timedelta(hours=2))
            )
        assert signer.drain() == 1
        refused = api.create(withdrawal(wallet.name, amount=str(5 * UNIT), nonce=1)).json()
        assert refused["status"] == "rejected"
        assert refused["policy"]["rule"] == "limit:cap"
    finally:
        installation.allow_all_policy()
