"""Rate limits in the approver app, in process: sign-in and enrolment calls per source address,
everything a signed-in approver does per approver. JSON endpoints answer a 429 problem, pages a
page a person can read; both say when to retry (`Retry-After`) and change nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import func, select

from custody.app import create_app
from custody.approvals.approvers import add_approver, invite
from custody.http.ratelimit import Kind, Rate, RateLimits
from custody.store.models import WebauthnChallenge
from custody.web import sessions
from tests.http.test_http_ratelimit import FakeClock
from tests.support.installation import Installation

ROOMY = Rate(1.0, 1_000)


def _limits(
    clock: FakeClock, *, sign_in: Rate = ROOMY, approver: Rate = ROOMY, address: Rate = ROOMY
) -> RateLimits:
    rates = {
        Kind.ADDRESS: address,
        Kind.SIGN_IN: sign_in,
        Kind.CLIENT: ROOMY,
        Kind.APPROVER: approver,
    }
    return RateLimits(rates=rates, clock=clock)


@contextmanager
def _app(
    installation: Installation, limits: RateLimits, peer: str = "198.51.100.7"
) -> Iterator[HttpClient]:
    app = create_app(installation.runtime, run_worker=False, limits=limits)
    with HttpClient(app, client=(peer, 50000)) as http:
        http.headers["Origin"] = installation.settings.public_url
        yield http


def _challenges(installation: Installation) -> int:
    with installation.runtime.db.read() as session:
        query = select(func.count()).select_from(WebauthnChallenge)
        return int(session.execute(query).scalar_one())


def _signed_in(installation: Installation) -> dict[str, str]:
    name = f"rl-{secrets.token_hex(4)}"
    with installation.runtime.db.write() as session:
        approver = add_approver(
            session, name=name, groups=["treasury"], device_key_pem=None, actor="test"
        )
        cookie = sessions.start(session, approver_id=approver.id, minutes=30)
    return {"Cookie": f"{sessions.COOKIE_NAME}={cookie}"}


def test_sign_in_prompts_are_limited_per_address_and_store_nothing_more(
    installation: Installation,
) -> None:
    clock = FakeClock()
    with _app(installation, _limits(clock, sign_in=Rate(0.2, 3))) as http:
        made = [http.post("/app/api/login/options").status_code for _ in range(3)]
        assert made == [200, 200, 200]
        stored = _challenges(installation)
        refused = http.post("/app/api/login/options")
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "5"
        assert refused.json()["type"] == "https://custody.dev/problems/rate-limited"
        assert "(rate limit: sign_in)" in refused.json()["detail"]
        verify = http.post("/app/api/login/verify", json={"challenge_id": "x", "credential": {}})
        assert verify.status_code == 429
        assert _challenges(installation) == stored
        # the rest of the app is not the sign-in bucket's business
        assert http.get("/app/login").status_code == 200
    with _app(installation, _limits(clock, sign_in=Rate(0.2, 3)), peer="198.51.100.8") as other:
        assert other.post("/app/api/login/options").status_code == 200  # another address


def test_enrolment_pages_over_the_limit_get_a_readable_page(installation: Installation) -> None:
    clock = FakeClock()
    name = f"rl-enrol-{secrets.token_hex(4)}"
    with installation.runtime.db.write() as session:
        add_approver(session, name=name, groups=["treasury"], device_key_pem=None, actor="test")
        token = invite(session, name=name, actor="test")
    with _app(installation, _limits(clock, sign_in=Rate(0.5, 2))) as http:
        guesses = [http.get(f"/app/enrol/{secrets.token_urlsafe(16)}") for _ in range(2)]
        assert [g.status_code for g in guesses] == [410, 410]
        page = http.get(f"/app/enrol/{token}")  # even the right link, while over the limit
        assert page.status_code == 429
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["retry-after"] == "2"
        assert "Too many requests" in page.text
        assert "try again in 2 s" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        clock.advance(2)
        assert http.get(f"/app/enrol/{token}").status_code == 200


def test_each_signed_in_approver_has_a_limit_of_their_own(installation: Installation) -> None:
    clock = FakeClock()
    first, second = _signed_in(installation), _signed_in(installation)
    with _app(installation, _limits(clock, approver=Rate(0.5, 2))) as http:
        assert [http.get("/app/", headers=first).status_code for _ in range(2)] == [200, 200]
        page = http.get("/app/history", headers=first)
        assert page.status_code == 429
        assert page.headers["retry-after"] == "2"
        assert "Too many requests" in page.text
        prompt = http.post("/app/api/requests/req_x/approve/options", headers=first)
        assert prompt.status_code == 429
        assert prompt.headers["content-type"] == "application/problem+json"
        assert "(rate limit: approver)" in prompt.json()["detail"]
        assert http.get("/app/", headers=second).status_code == 200  # same address, own bucket
        clock.advance(2)
        assert http.get("/app/", headers=first).status_code == 200


def test_app_pages_are_limited_per_address_too(installation: Installation) -> None:
    clock = FakeClock()
    with _app(installation, _limits(clock, address=Rate(0.1, 2))) as http:
        assert [http.get("/app/login").status_code for _ in range(2)] == [200, 200]
        page = http.get("/app/login")
        assert page.status_code == 429
        assert page.headers["retry-after"] == "10"
        assert "<h1>Too many requests</h1>" in page.text
        assert http.get("/healthz").status_code == 200
        # its stylesheet still loads: static files are not limited
        assert http.get("/app/static/app.css").status_code == 200
