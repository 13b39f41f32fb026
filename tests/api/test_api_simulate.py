"""`POST /v1/policy/simulate`: the decision a request would get, and nothing stored."""

from __future__ import annotations

import json

from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, WalletInfo


def test_simulate_decides_without_storing(
    api: Api, installation: Installation, wallet: WalletInfo
) -> None:
    installation.apply_policy(f"""
version: 1
rules:
  - id: small
    match: {{type: withdrawal, wallets: [{wallet.name}], assets: [ETH], amount_lte: "100"}}
    action: allow
  - id: big
    match: {{type: withdrawal}}
    action: {{require_approvals: {{count: 2, group: treasury}}}}
""")
    try:
        before = installation.counts()
        small = api.call(
            "POST",
            "/v1/policy/simulate",
            json.dumps(withdrawal(wallet.name, amount="100")).encode(),
        )
        big = api.call(
            "POST",
            "/v1/policy/simulate",
            json.dumps(withdrawal(wallet.name, amount="101")).encode(),
        )
        assert small.status_code == big.status_code == 200
        assert small.json()["policy"]["rule"] == "small"
        assert small.json()["policy"]["decision"] == "allow"
        assert big.json()["policy"]["decision"] == "require_approvals"
        assert big.json()["facts"]["amount"] == "101"
        assert small.json()["payload"]["digest"].startswith("0x")
        assert installation.counts() == before
    finally:
        installation.allow_all_policy()


def test_simulate_refuses_bad_bodies_like_intake(api: Api, wallet: WalletInfo) -> None:
    answer = api.call(
        "POST", "/v1/policy/simulate", json.dumps(withdrawal(wallet.name, amount="1.5")).encode()
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"
