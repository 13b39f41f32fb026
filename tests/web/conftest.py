"""The approver web app in real headless Chromium (Debian's), against a real uvicorn server.

Passkeys come from Chromium's virtual authenticator (CDP `WebAuthn` domain), one per browser
context, so each approver has their own phone. Playwright only drives the system Chromium: no
browser is ever downloaded.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from custody.app import create_app
from custody.approvals.approvers import add_approver, invite
from custody.runtime import Runtime
from custody.store.models import Approver
from tests.support.api import Api
from tests.support.installation import Installation, WalletInfo
from tests.support.server import serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
# Tests write screenshots to a temporary folder; UPDATE_SCREENSHOTS=1 refreshes the committed ones.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ALLOWLISTED = "0xe3139eABD9dCaDCDC9e6f2848Ef4AfD85Dc0c1B7"

QUORUM_POLICY = """
version: 1
allowlists:
  treasury-destinations:
    - {{chain: ethereum, address: "{listed}", label: "Exchange deposit"}}
rules:
  - id: two-treasury
    match: {{type: withdrawal, wallets: [{wallet}]}}
    action: {{require_approvals: {{count: 2, group: treasury, expires_after: 24h}}}}
  - {{id: allow-all, match: {{type: withdrawal}}, action: allow}}
"""

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing; `make pytest` installs Debian's chromium with apt",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright  # noqa: E402


@dataclass
class WebServer:
    url: str
    runtime: Runtime


@pytest.fixture(scope="session")
def web_server(installation: Installation) -> Iterator[WebServer]:
    """uvicorn on 127.0.0.1 (free port); the browser reaches it as `localhost` (the RP id)."""
    runtimes: list[Runtime] = []

    def make_app(port: int) -> FastAPI:
        url = f"http://localhost:{port}"
        runtimes.append(Runtime(installation.settings.model_copy(update={"public_url": url})))
        return create_app(runtimes[0], run_worker=False)

    try:
        with serving(make_app) as port:
            yield WebServer(f"http://localhost:{port}", runtimes[0])
    finally:
        for runtime in runtimes:
            runtime.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Phone:
    """One approver's phone: a browser context with its own virtual passkey authenticator."""

    name: str
    approver_id: str
    base: str
    context: BrowserContext
    page: Page
    authenticator: str
    responses: list[tuple[str, int]] = field(default_factory=list)

    def go(self, path: str) -> Page:
        self.page.goto(self.base + path)
        return self.page

    def enrol(self, token: str) -> None:
        self.go(f"/app/enrol/{token}")
        self.page.get_by_role("button", name="Create passkey").click()
        self.page.wait_for_url("**/app/login?enrolled=1")

    def login(self) -> None:
        self.go("/app/login")
        self.page.get_by_role("button", name="Sign in with passkey").click()
        self.page.wait_for_url(f"{self.base}/app/")

    def open_request(self, request_id: str) -> Page:
        return self.go(f"/app/requests/{request_id}")

    def decide(self, decision: str) -> dict[str, Any]:
        """Click Approve/Reject; the JSON answer of the verify call."""
        with self.page.expect_response(lambda r: r.url.endswith(f"/{decision}/verify")) as info:
            self.page.get_by_role("button", name=decision.capitalize()).click()
        response = info.value
        return {"status": response.status, "body": response.json()}

    def csrf(self) -> str:
        return str(self.page.locator('meta[name="csrf-token"]').get_attribute("content"))

    def fetch(self, path: str, body: object = None, headers: dict[str, str] | None = None) -> int:
        """A POST from inside the page (so the browser adds Origin and the cookie)."""
        status: int = self.page.evaluate(
            """async ([path, body, headers]) => {
                const r = await fetch(path, {method: "POST", body: JSON.stringify(body ?? {}),
                    headers: Object.assign({"Content-Type": "application/json"}, headers)});
                return r.status;
            }""",
            [path, body, headers or {}],
        )
        return status


@pytest.fixture
def phones(
    browser: Browser, web_server: WebServer, installation: Installation
) -> Iterator[Callable[..., Phone]]:
    """Make an approver in group treasury (or the given groups) with a phone and an invite."""
    opened: list[BrowserContext] = []

    def make(*groups: str, name: str | None = None) -> tuple[Phone, str]:
        name = name or f"web-{secrets.token_hex(4)}"
        with installation.runtime.db.write() as session:
            approver: Approver = add_approver(
                session,
                name=name,
                groups=list(groups) or ["treasury"],
                device_key_pem=None,
                actor="test",
            )
            approver_id = approver.id
            token = invite(session, name=name, actor="test")
        context = browser.new_context(viewport=PHONE, base_url=web_server.url)
        context.set_default_timeout(20_000)
        opened.append(context)
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("WebAuthn.enable", {"enableUI": False})
        added = cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                }
            },
        )
        phone = Phone(name, approver_id, web_server.url, context, page, added["authenticatorId"])
        return phone, token

    yield make
    for context in opened:
        context.close()


@pytest.fixture
def quorum_wallet(
    installation: Installation, request: pytest.FixtureRequest
) -> Iterator[WalletInfo]:
    """A fresh wallet (named by an indirect parameter, if any) under a 2-of-2 treasury rule."""
    wallet = installation.wallet(name=getattr(request, "param", None))
    installation.apply_policy(QUORUM_POLICY.format(wallet=wallet.name, listed=ALLOWLISTED))
    try:
        yield wallet
    finally:
        installation.allow_all_policy()


@pytest.fixture
def api(web_server: WebServer, installation: Installation) -> Iterator[Api]:
    """A trading system calling the running server's API."""
    with httpx.Client(base_url=web_server.url, timeout=30) as client:
        yield Api(client.request, installation.client())


def pending(api: Api, wallet: WalletInfo, *, nonce: int = 0, **extra: Any) -> dict[str, Any]:
    from tests.support.api import withdrawal

    answer = api.create(withdrawal(wallet.name, nonce=nonce, **extra))
    created: dict[str, Any] = answer.json()
    assert created["status"] == "pending_approval", json.dumps(created)
    return created
