"""A version applied before amount bounds had to name their asset (issue 9) stays readable.

Its history must load (activation delays are counted across versions), but its unnamed bound
must not keep judging base units of any token: it denies in its rule's name until a version
that names the asset is applied.
"""

from __future__ import annotations

import json

from fastapi.testclient import TestClient as HttpClient

from custody.app import create_app
from custody.policy.loader import load_stored_policy_text
from custody.store.base import utcnow
from custody.store.models import PolicyVersion
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation

OLD = """
version: 1
allowlists:
  desks:
    - {chain: ethereum, address: "0x0DbBACFd06dbdB317eefEFAfb9fC5A06Ea04CD2A", label: desk}
rules:
  - {id: small-auto, match: {type: withdrawal, amount_lte: "1000000000000000000"}, action: allow}
  - {id: large, match: {type: withdrawal}, action: {require_approvals: {count: 2, group: treasury}}}
"""
FIXED = OLD.replace("{type: withdrawal, amount_lte", "{type: withdrawal, assets: [ETH], amount_lte")


def store_as_applied_long_ago(inst: Installation, text: str) -> None:
    """What an older release stored: the text as applied, with its digest."""
    loaded = load_stored_policy_text(text, "old.yaml")
    with inst.runtime.db.write() as session:
        session.add(
            PolicyVersion(
                digest=loaded.digest,
                source_name="old.yaml",
                source_text=text,
                applied_by="operator",
                applied_at=utcnow(),
                state="applied",
            )
        )


def simulate(api: Api, wallet: str) -> dict[str, str]:
    body = json.dumps(withdrawal(wallet, amount="1")).encode()
    answer = api.call("POST", "/v1/policy/simulate", body)
    assert answer.status_code == 200, answer.text
    policy: dict[str, str] = answer.json()["policy"]
    return policy


def test_a_stored_unnamed_bound_denies_until_a_fixed_version_applies(
    fresh_installation: Installation,
) -> None:
    store_as_applied_long_ago(fresh_installation, OLD)
    wallet = fresh_installation.wallet()
    with HttpClient(create_app(fresh_installation.runtime, run_worker=False)) as http:
        api = Api(http.request, fresh_installation.client())
        denied = simulate(api, wallet.name)
        assert denied["decision"] == "deny"
        assert denied["rule"] == "small-auto"
        assert "amount_lte counts base units of one asset" in denied["reason"]

        # The allowlist entry was listed by the old version too: its history is read.
        fresh_installation.apply_policy(FIXED)
        assert simulate(api, wallet.name)["rule"] == "small-auto"
        assert simulate(api, wallet.name)["decision"] == "allow"
