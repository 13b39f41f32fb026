"""What the web app refuses: tampered assertions, missing CSRF or Origin, self-approval by the
maker, used or expired invites, and disabled approvers."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from eth_account import Account
from playwright.sync_api import Route
from sqlalchemy import func, select, update

from custody.approvals.approvers import disable, invite
from custody.store.base import utcnow
from custody.store.models import Approval, Request, WebSession
from tests.support.api import Api
from tests.support.installation import Installation, WalletInfo
from tests.web.conftest import Phone, WebServer, pending

pytestmark = pytest.mark.slow


def approvals_of(installation: Installation, request_id: str) -> int:
    with installation.runtime.db.read() as session:
        return session.execute(
            select(func.count()).select_from(Approval).where(Approval.request_id == request_id)
        ).scalar_one()


def status_of(installation: Installation, request_id: str) -> str:
    with installation.runtime.db.read() as session:
        request = session.get(Request, request_id)
        assert request is not None
        return request.status


def flip_signature(route: Route) -> None:
    body = json.loads(route.request.post_data or "{}")
    signature = bytearray(
        base64.urlsafe_b64decode(body["credential"]["response"]["signature"] + "==")
    )
    signature[-5] ^= 0x01
    body["credential"]["response"]["signature"] = (
        base64.urlsafe_b64encode(bytes(signature)).decode().rstrip("=")
    )
    route.continue_(post_data=json.dumps(body))


def test_a_tampered_assertion_is_refused_and_changes_nothing(
    phones: Callable[..., tuple[Phone, str]],
    api: Api,
    quorum_wallet: WalletInfo,
    installation: Installation,
) -> None:
    alice, token = phones()
    alice.enrol(token)
    alice.login()
    req = pending(api, quorum_wallet)
    page = alice.open_request(req["id"])

    # (a) one bit of the signature flipped on its way to the server
    page.route("**/approve/verify", flip_signature)
    answer = alice.decide("approve")
    assert answer["status"] == 401, answer
    assert "does not verify" in answer["body"]["detail"]
    page.locator("#message.error").wait_for()
    page.unroute("**/approve/verify")
    assert approvals_of(installation, req["id"]) == 0
    assert status_of(installation, req["id"]) == "pending_approval"

    # (b) an assertion made to approve, sent as a rejection (another statement)
    page.route(
        "**/approve/verify",
        lambda route: route.continue_(url=route.request.url.replace("/approve/", "/reject/")),
    )
    with page.expect_response(lambda r: r.url.endswith("/reject/verify")) as info:
        page.get_by_role("button", name="Approve").click()
    assert info.value.status == 401
    page.unroute("**/approve/verify")
    assert approvals_of(installation, req["id"]) == 0
    assert status_of(installation, req["id"]) == "pending_approval"

    # (c) a challenge is used once: replaying a captured, genuine answer is refused
    captured: list[str] = []

    def keep(route: Route) -> None:
        captured.append(route.request.post_data or "")
        route.continue_()

    page.route("**/approve/verify", keep)
    assert alice.decide("approve")["status"] == 200
    assert approvals_of(installation, req["id"]) == 1
    replay = alice.fetch(
        f"/app/api/requests/{req['id']}/approve/verify",
        json.loads(captured[0]),
        {"X-CSRF-Token": alice.csrf()},
    )
    assert replay == 401
    assert approvals_of(installation, req["id"]) == 1


def test_posts_without_csrf_token_or_from_another_origin_are_refused(
    phones: Callable[..., tuple[Phone, str]],
    api: Api,
    quorum_wallet: WalletInfo,
    web_server: WebServer,
) -> None:
    alice, token = phones()
    alice.enrol(token)
    alice.login()
    req = pending(api, quorum_wallet)
    alice.open_request(req["id"])
    options = f"/app/api/requests/{req['id']}/approve/options"
    assert alice.fetch(options) == 403  # no token
    assert alice.fetch(options, headers={"X-CSRF-Token": "forged"}) == 403
    assert alice.fetch(options, headers={"X-CSRF-Token": alice.csrf()}) == 200

    cookie = next(c for c in alice.context.cookies() if c["name"] == "custody_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    headers = {"X-CSRF-Token": alice.csrf(), "Content-Type": "application/json"}
    with httpx.Client(base_url=web_server.url, cookies={cookie["name"]: cookie["value"]}) as http:
        evil = http.post(options, headers=headers | {"Origin": "http://evil.example"})
        assert evil.status_code == 403
        assert evil.headers["content-type"].startswith("application/problem+json")
        missing = http.post(options, headers=headers)
        assert missing.status_code == 403
        logout = http.post(
            "/app/logout",
            content=b"csrf_token=wrong",
            headers={"Origin": web_server.url, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert logout.status_code == 403
        assert "text/html" in logout.headers["content-type"]
        assert "Traceback" not in logout.text
    alice.go("/app/")
    assert alice.page.url == f"{web_server.url}/app/"  # still signed in


def test_the_maker_starts_a_withdrawal_and_cannot_approve_it(
    phones: Callable[..., tuple[Phone, str]],
    quorum_wallet: WalletInfo,
    installation: Installation,
) -> None:
    maker, token = phones("treasury", installation.grant_maker())
    maker.enrol(token)
    maker.login()
    page = maker.go("/app/new")
    page.select_option('select[name="wallet"]', quorum_wallet.name)
    page.fill('input[name="destination"]', Account.create().address)
    page.fill('input[name="amount"]', "2.5")
    page.get_by_role("button", name="Start withdrawal").click()
    page.wait_for_url("**/app/requests/req_*")
    request_id = page.url.rsplit("/", 1)[1]
    assert "2.5 ETH" in page.inner_text(".summary")
    assert "someone else must approve" in page.locator("#why-not").inner_text()
    assert page.get_by_role("button", name="Approve").count() == 0
    with installation.runtime.db.read() as session:
        request = session.get(Request, request_id)
        assert request is not None
        assert request.requested_by_approver == maker.approver_id
        assert request.amount == "2500000000000000000"
        assert request.status == "pending_approval"
    # asking for the approval prompt directly is refused too, as the device-key API refuses it
    # (one rule, custody.approvals.duties: 403 approval-refused)
    status = maker.fetch(
        f"/app/api/requests/{request_id}/approve/options", headers={"X-CSRF-Token": maker.csrf()}
    )
    assert status == 403
    assert approvals_of(installation, request_id) == 0


def test_used_and_expired_invites_are_refused(
    phones: Callable[..., tuple[Phone, str]], installation: Installation
) -> None:
    alice, token = phones()
    alice.enrol(token)
    again = alice.go(f"/app/enrol/{token}")
    assert "not valid" in again.inner_text("main")
    assert alice.fetch(f"/app/api/enrol/{token}/options") == 410

    with installation.runtime.db.write() as session:
        stale = invite(session, name=alice.name, actor="test", now=utcnow() - timedelta(days=2))
    response = alice.page.goto(f"{alice.base}/app/enrol/{stale}")
    assert response is not None
    assert response.status == 410
    assert alice.fetch(f"/app/api/enrol/{stale}/options") == 410
    assert alice.page.locator("[data-ceremony=enrol]").count() == 0


def test_a_disabled_approver_is_signed_out_and_cannot_sign_in(
    phones: Callable[..., tuple[Phone, str]], installation: Installation, web_server: WebServer
) -> None:
    alice, token = phones()
    alice.enrol(token)
    alice.login()
    with installation.runtime.db.write() as session:
        disable(session, name=alice.name, actor="test")
    alice.go("/app/")
    assert alice.page.url == f"{web_server.url}/app/login"
    with alice.page.expect_response(lambda r: r.url.endswith("/login/verify")) as info:
        alice.page.get_by_role("button", name="Sign in with passkey").click()
    assert info.value.status == 401
    alice.page.locator("#message.error").wait_for()


def test_sessions_end_at_logout_and_at_expiry(
    phones: Callable[..., tuple[Phone, str]], installation: Installation, web_server: WebServer
) -> None:
    alice, token = phones()
    alice.enrol(token)
    alice.login()
    alice.page.get_by_role("button", name="Sign out").click()
    alice.page.wait_for_url("**/app/login")
    assert sessions_of(installation, alice.approver_id) == 0
    alice.go("/app/history")
    assert alice.page.url == f"{web_server.url}/app/login"

    alice.login()
    assert sessions_of(installation, alice.approver_id) == 1
    with installation.runtime.db.write() as session:
        session.execute(
            update(WebSession)
            .where(WebSession.approver_id == alice.approver_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    alice.go("/app/")
    assert alice.page.url == f"{web_server.url}/app/login"


def sessions_of(installation: Installation, approver_id: str) -> int:
    with installation.runtime.db.read() as session:
        return session.execute(
            select(func.count())
            .select_from(WebSession)
            .where(WebSession.approver_id == approver_id)
        ).scalar_one()
