"""Starting withdrawals in the approver app is a permission an operator grants to a group
(`custody approvers grant GROUP maker`), not something every approver may do: others do not see
the form, are refused with a clear page when they ask for it or post it, and nothing is stored.
The grant and the revocation are ledgered, hold from the next click, and show in `approvers list`.
In process, no browser.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.testclient import TestClient as HttpClient

from custody.approvals.approvers import add_approver, hash_token
from custody.store.models import WebSession
from custody.web import sessions
from tests.support.api import DESTINATION
from tests.support.cli import invoke, ok_json
from tests.support.installation import Installation, WalletInfo


@pytest.fixture(scope="module")
def app(installation: Installation) -> Iterator[HttpClient]:
    from custody.app import create_app

    with HttpClient(create_app(installation.runtime, run_worker=False)) as client:
        client.headers["Origin"] = installation.settings.public_url
        yield client


@dataclass(frozen=True)
class Person:
    name: str
    group: str
    cookie: dict[str, str]
    csrf: str


@pytest.fixture
def person(installation: Installation) -> Person:
    """A signed-in approver alone in a group of their own, which nobody granted anything yet."""
    name, group = f"desk-{secrets.token_hex(4)}", f"desk-{secrets.token_hex(4)}"
    with installation.runtime.db.write() as session:
        approver = add_approver(
            session, name=name, groups=["treasury", group], device_key_pem=None, actor="test"
        )
        cookie = sessions.start(session, approver_id=approver.id, minutes=30)
        session.flush()
        row = session.get(WebSession, hash_token(cookie))
        assert row is not None
        csrf = row.csrf_token
    return Person(name, group, {"Cookie": f"{sessions.COOKIE_NAME}={cookie}"}, csrf)


@pytest.fixture(scope="module")
def wallet(installation: Installation) -> WalletInfo:
    installation.allow_all_policy()
    return installation.wallet()


def _post(app: HttpClient, person: Person, wallet: WalletInfo) -> int:
    return _submit(app, person, wallet).status_code


def _submit(
    app: HttpClient, person: Person, wallet: WalletInfo, call_id: str | None = None
) -> httpx.Response:
    form = {
        "csrf_token": person.csrf,
        "form_key": secrets.token_urlsafe(16),
        "wallet": wallet.name,
        "destination": DESTINATION,
        "amount": "0.001",
        "nonce": str(secrets.randbelow(10**9)),
        "gas": "21000",
        "max_fee_gwei": "30",
        "priority_fee_gwei": "1",
    }
    headers = person.cookie | ({"X-Request-Id": call_id} if call_id else {})
    return app.post("/app/new", data=form, headers=headers, follow_redirects=False)


def _operator(installation: Installation, *args: str) -> dict[str, object]:
    answer = ok_json(invoke(["approvers", *args, "--json"], installation.env))
    assert isinstance(answer, dict)
    return answer


def _listed_as_maker(installation: Installation, name: str) -> bool:
    listed = ok_json(invoke(["approvers", "list", "--json"], installation.env))
    return bool(next(a for a in listed if a["name"] == name)["maker"])


def test_an_approver_without_the_permission_neither_sees_nor_uses_the_form(
    app: HttpClient, installation: Installation, person: Person, wallet: WalletInfo
) -> None:
    before = installation.counts()
    queue = app.get("/app/", headers=person.cookie)
    assert queue.status_code == 200
    assert 'href="/app/new"' not in queue.text
    page = app.get("/app/new", headers=person.cookie)
    assert page.status_code == 403
    assert "maker permission" in page.text
    assert 'id="new-withdrawal"' not in page.text
    assert _post(app, person, wallet) == 403
    assert installation.counts() == before
    assert _listed_as_maker(installation, person.name) is False


def test_a_granted_group_may_start_withdrawals_until_revoked(
    app: HttpClient, installation: Installation, person: Person, wallet: WalletInfo
) -> None:
    granted = _operator(installation, "grant", person.group, "maker")
    assert granted == {
        "group": person.group,
        "permission": "maker",
        "granted": True,
        "changed": True,
    }
    assert _listed_as_maker(installation, person.name) is True
    queue = app.get("/app/", headers=person.cookie)
    assert 'href="/app/new"' in queue.text
    page = app.get("/app/new", headers=person.cookie)
    assert page.status_code == 200
    assert 'id="new-withdrawal"' in page.text
    before = installation.counts()
    assert _post(app, person, wallet) == 303
    assert installation.counts()["requests"] == before["requests"] + 1

    # revoked: from the very next click, with the same session
    _operator(installation, "revoke", person.group, "maker")
    assert app.get("/app/new", headers=person.cookie).status_code == 403
    assert _post(app, person, wallet) == 403
    assert _listed_as_maker(installation, person.name) is False


def test_a_withdrawal_started_in_the_app_records_the_call_id(
    app: HttpClient, installation: Installation, person: Person, wallet: WalletInfo
) -> None:
    """As a client's call does: the request.created entry names the X-Request-Id of the call."""
    _operator(installation, "grant", person.group, "maker")
    try:
        call_id = f"app-{secrets.token_hex(8)}"
        started = _submit(app, person, wallet, call_id)
        assert started.status_code == 303
        assert started.headers["X-Request-Id"] == call_id
    finally:
        _operator(installation, "revoke", person.group, "maker")
    created = [
        entry["data"]
        for entry in installation.ledger_entries("request.created")
        if entry["data"].get("http_request_id") == call_id
    ]
    assert len(created) == 1
    assert created[0]["requested_by_approver"] is not None


def test_grants_and_revocations_are_ledgered_once(
    installation: Installation, person: Person
) -> None:
    assert _operator(installation, "grant", person.group, "maker")["changed"] is True
    assert _operator(installation, "grant", person.group, "maker")["changed"] is False
    assert _operator(installation, "revoke", person.group, "maker")["changed"] is True
    entries = [
        (entry["kind"], entry["data"])
        for entry in installation.ledger_entries()
        if entry["kind"].startswith("group.") and entry["data"].get("group") == person.group
    ]
    data = {"group": person.group, "permission": "maker"}
    assert entries == [("group.permission_granted", data), ("group.permission_revoked", data)]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["grant", "treasury", "admin"], "admin"),
        (["grant", "Not A Group", "maker"], "group name"),
    ],
)
def test_a_wrong_grant_is_refused_in_one_line(
    installation: Installation, args: list[str], says: str
) -> None:
    before = installation.counts()
    result = invoke(["approvers", *args], installation.env)
    assert result.returncode != 0
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert says in result.stderr
    assert installation.counts() == before
