"""Property: no interleaving of requests, cancellations, expiries, policy rejections and signing
lets the live and signed amounts of a wallet exceed its limit (checked in the database after every
step). Requests above 5 units wait for approvals, so pending reservations and their expiry are in
play too.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from custody.signing.worker import SignerWorker
from custody.store.base import utcnow
from custody.store.models import LIVE_STATUSES, Request, Wallet
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation

CAP = 20

steps = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.integers(min_value=1, max_value=9)),
        st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=50)),
        st.tuples(st.just("sign"), st.just(0)),
        st.tuples(st.just("expire"), st.integers(min_value=0, max_value=50)),
    ),
    min_size=1,
    max_size=25,
)


PENDING_ABOVE_FIVE = """
version: 1
limits:
  - {{id: cap, window: 24h, scope: {{wallets: [{wallet}], assets: [ETH]}}, max_amount: "{cap}"}}
rules:
  - id: big
    match: {{type: withdrawal, assets: [ETH], amount_gt: "5"}}
    action: {{require_approvals: {{count: 2, group: treasury}}}}
  - {{id: small, match: {{type: withdrawal}}, action: allow}}
"""


def expire(installation: Installation, request_id: str) -> None:
    with installation.runtime.db.write() as session:
        session.execute(
            update(Request)
            .where(Request.id == request_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


def counted(installation: Installation, wallet: str) -> int:
    with installation.runtime.db.read() as session:
        rows = session.execute(
            select(Request.amount)
            .join(Wallet, Wallet.id == Request.wallet_id)
            .where(Wallet.name == wallet, Request.status.in_(LIVE_STATUSES))
        ).scalars()
        return sum(int(a) for a in rows)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps)
def test_no_interleaving_exceeds_the_limit(
    installation: Installation, api: Api, signer: SignerWorker, operations: list[tuple[str, int]]
) -> None:
    wallet = installation.wallet()
    installation.apply_policy(PENDING_ABOVE_FIVE.format(wallet=wallet.name, cap=CAP))
    created: list[str] = []
    try:
        for nonce, (op, value) in enumerate(operations):
            if op == "create":
                answer = api.create(withdrawal(wallet.name, amount=str(value), nonce=nonce))
                assert answer.status_code == 201, answer.text
                created.append(answer.json()["id"])
            elif op == "cancel" and created:
                api.call("POST", f"/v1/requests/{created[value % len(created)]}/cancel")
            elif op == "expire" and created:
                expire(installation, created[value % len(created)])
                signer.expire_due()
            else:
                signer.drain()
            assert counted(installation, wallet.name) <= CAP
    finally:
        installation.allow_all_policy()
