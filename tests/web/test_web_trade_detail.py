"""An approver sees what a trade sells, buys and whom it pays, before deciding. In process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient as HttpClient

from custody.app import create_app
from custody.web import sessions
from tests.intake.intake_support import random_address
from tests.intake.trade_support import Tokens, order, trade, venue
from tests.support.api import Api
from tests.support.approver_app import session_cookie
from tests.support.installation import Installation


@pytest.fixture
def app(installation: Installation) -> Iterator[HttpClient]:
    with HttpClient(create_app(installation.runtime, run_worker=False)) as client:
        yield client


def test_detail_shows_both_sides_and_a_receiver_that_is_not_the_wallet(
    app: HttpClient, installation: Installation
) -> None:
    tokens = Tokens(installation)
    name, contract = venue(installation)
    desk = random_address()
    installation.apply_policy(
        "version: 1\nallowlists:\n"
        f"  desks: [{{chain: ethereum, address: '{desk}', label: desk}}]\n"
        "rules:\n"
        f"  - {{id: to-desks, match: {{type: trade, venues: [{name}], receiver_in: desks}},"
        " action: {require_approvals: {count: 1, group: treasury}}}\n"
    )
    try:
        wallet = installation.wallet()
        typed = order(
            contract,
            sell_token=tokens.usdc,
            buy_token=tokens.weth,
            sell_amount=1_500_000,
            buy_amount=10**15,
            receiver=desk,
        )
        created = Api(app.request, installation.client()).create(trade(wallet.name, name, typed))
        assert created.json()["status"] == "pending_approval", created.text
    finally:
        installation.allow_all_policy()
    cookie = session_cookie(installation, ["treasury"], prefix="checker")
    page = app.get(
        f"/app/requests/{created.json()['id']}",
        headers={"Cookie": f"{sessions.COOKIE_NAME}={cookie}"},
    )
    assert page.status_code == 200, page.text
    assert f"1.5 USDC ({tokens.usdc})" in page.text
    assert f"0.001 {tokens.weth_symbol} ({tokens.weth})" in page.text
    assert f"{desk} (NOT this wallet)" in page.text
    assert f"Pays someone else: what the order buys goes to {desk}" in page.text
