"""A freeze and its lift reach people: webhooks to clients and approver groups, and the approver
app's request page says why a request waits."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient as HttpClient

from custody.web import sessions
from custody.webhooks.dispatcher import dispatch_all
from tests.freezes.conftest import cli_json, submit
from tests.freezes.test_unfreeze_governance import GOVERNED
from tests.support.api import Api
from tests.support.approver_app import session_cookie
from tests.support.installation import Installation
from tests.webhooks.helpers import deliveries, set_client_url, set_group_url

CLIENT_URL = "https://desk.example/hooks"
ADMINS_URL = "https://chat.example/admins"
TREASURY_URL = "https://chat.example/treasury"


def bodies(home: Installation, url: str) -> list[dict[str, Any]]:
    return [json.loads(d.body) for d in deliveries(home, url)]


def test_freezes_and_lifts_are_sent_to_clients_and_groups(home: Installation) -> None:
    desk, quiet = home.client(), home.client()
    set_client_url(home, desk.name, CLIENT_URL)
    set_group_url(home, "treasury", TREASURY_URL)
    set_group_url(home, "admins", ADMINS_URL)
    wallet = home.wallet()
    dispatch_all(home.runtime.db)
    frozen = cli_json(home, "freeze", "--wallet", wallet.name, "--reason", "leaked key")
    home.apply_policy(GOVERNED)
    pending = cli_json(home, "unfreeze", "--wallet", wallet.name, "--reason", "rotated")
    dispatch_all(home.runtime.db)

    sent = bodies(home, CLIENT_URL)
    assert [b["event"] for b in sent] == ["signing.frozen"]
    assert sent[0] | {"ledger_index": 0} == {
        "event": "signing.frozen",
        "ledger_index": 0,
        "freeze": frozen["id"],
        "scope": "wallet",
        "wallet": wallet.name,
        "reason": "leaked key",
        "source": "operator",
    }
    # The lift waiting for governance goes to the groups it waits for, with what they sign.
    assert [b["event"] for b in bodies(home, ADMINS_URL)] == [
        "signing.frozen",
        "signing.unfreeze_requested",
    ]
    asked = bodies(home, ADMINS_URL)[1]
    assert asked["statement"] == pending["pending"][0]["statement"]
    assert [b["event"] for b in bodies(home, TREASURY_URL)] == ["signing.frozen"]
    assert all(d.target == f"client:{desk.id}" for d in deliveries(home, CLIENT_URL))
    assert quiet.id not in {d.target for url in (CLIENT_URL,) for d in deliveries(home, url)}


def test_unfrozen_is_sent_too(home: Installation) -> None:
    desk = home.client()
    set_client_url(home, desk.name, CLIENT_URL)
    cli_json(home, "freeze", "--reason", "drill")
    cli_json(home, "unfreeze", "--reason", "drill over")
    dispatch_all(home.runtime.db)
    sent = bodies(home, CLIENT_URL)
    assert [b["event"] for b in sent] == ["signing.frozen", "signing.unfrozen"]
    assert sent[1]["reason"] == "drill over"
    assert sent[1]["frozen_for"] == "drill"
    assert sent[1]["scope"] == "installation"


def test_the_approver_app_shows_why_a_request_waits(http: HttpClient, home: Installation) -> None:
    wallet = home.wallet()
    home.apply_policy(
        "version: 1\nrules:\n  - {id: one, match: {type: withdrawal}, "
        "action: {require_approvals: {count: 1, group: treasury}}}\n"
    )
    created = submit(Api(http.request, home.client()), wallet.name)
    assert created["status"] == "pending_approval"
    cli_json(home, "freeze", "--wallet", wallet.name, "--reason", "waiting for the auditors")
    cookie = session_cookie(home, ["treasury"], prefix="checker")
    page = http.get(
        f"/app/requests/{created['id']}", headers={"Cookie": f"{sessions.COOKIE_NAME}={cookie}"}
    )
    assert page.status_code == 200, page.text
    assert 'id="frozen"' in page.text
    assert f"signing for wallet {wallet.name} is frozen" in page.text
    assert "waiting for the auditors" in page.text
    assert "Approvals still count; once approved, it waits too." in page.text
