"""Passkey prompts asked for without signing in cannot fill the database: a new prompt removes
the expired and used ones, and open ones are bounded (sign-in all together, enrolment per
approver). In process, no browser: these are the options calls only.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import func, select, update

from custody.approvals.approvers import add_approver, invite
from custody.http.ratelimit import RateLimits
from custody.store.base import utcnow
from custody.store.models import WebauthnChallenge
from custody.web.passkeys import MAX_OPEN_LOGIN, MAX_OPEN_PER_APPROVER
from tests.support.installation import Installation


@pytest.fixture(scope="module")
def app(installation: Installation) -> Iterator[HttpClient]:
    from custody.app import create_app

    # The bounds must hold whatever the rate limits let through (they are per source address,
    # and an attacker may have many): these tests ask for hundreds of prompts from one.
    unlimited = RateLimits.from_settings(
        installation.settings.model_copy(update={"rate_limits": False})
    )
    with HttpClient(create_app(installation.runtime, run_worker=False, limits=unlimited)) as client:
        client.headers["Origin"] = installation.settings.public_url
        yield client


def _login_prompt(app: HttpClient) -> str:
    answer = app.post("/app/api/login/options")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["challenge_id"])


def _stored(installation: Installation, ids: list[str]) -> set[str]:
    with installation.runtime.db.read() as session:
        query = select(WebauthnChallenge.id).where(WebauthnChallenge.id.in_(ids))
        return set(session.execute(query).scalars())


def _count(installation: Installation, purpose: str, approver_id: str | None = None) -> int:
    owner = (
        WebauthnChallenge.approver_id.is_(None)
        if approver_id is None
        else WebauthnChallenge.approver_id == approver_id
    )
    with installation.runtime.db.read() as session:
        query = select(func.count()).where(WebauthnChallenge.purpose == purpose, owner)
        return int(session.execute(query).scalar_one())


def test_expired_and_used_prompts_are_removed_by_the_next_one(
    app: HttpClient, installation: Installation
) -> None:
    expired = [_login_prompt(app) for _ in range(3)]
    used = _login_prompt(app)
    # a garbage answer still uses the prompt up (it may never be tried twice)
    refused = app.post("/app/api/login/verify", json={"challenge_id": used, "credential": {}})
    assert refused.status_code == 401
    with installation.runtime.db.write() as session:
        past = utcnow() - timedelta(seconds=1)
        session.execute(
            update(WebauthnChallenge)
            .where(WebauthnChallenge.id.in_(expired))
            .values(expires_at=past)
        )
    assert _stored(installation, [*expired, used]) == {*expired, used}
    newest = _login_prompt(app)
    assert _stored(installation, [*expired, used, newest]) == {newest}


def test_open_sign_in_prompts_are_bounded_and_the_oldest_go_first(
    app: HttpClient, installation: Installation
) -> None:
    made = [_login_prompt(app) for _ in range(MAX_OPEN_LOGIN + 25)]
    assert _count(installation, "login") == MAX_OPEN_LOGIN
    kept = _stored(installation, made)
    assert kept == set(made[-MAX_OPEN_LOGIN:])
    # an evicted prompt is refused like an unknown one
    late = app.post("/app/api/login/verify", json={"challenge_id": made[0], "credential": {}})
    assert late.status_code == 401
    assert "unknown" in late.json()["detail"]


def test_enrolment_prompts_are_bounded_per_approver(
    app: HttpClient, installation: Installation
) -> None:
    name = f"enrol-{secrets.token_hex(4)}"
    with installation.runtime.db.write() as session:
        approver = add_approver(
            session, name=name, groups=["treasury"], device_key_pem=None, actor="test"
        )
        approver_id = approver.id
        token = invite(session, name=name, actor="test")
    made = []
    for _ in range(MAX_OPEN_PER_APPROVER + 5):
        answer = app.post(f"/app/api/enrol/{token}/options")
        assert answer.status_code == 200, answer.text
        made.append(str(answer.json()["challenge_id"]))
    assert _count(installation, "enrol", approver_id) == MAX_OPEN_PER_APPROVER
    assert _stored(installation, made) == set(made[-MAX_OPEN_PER_APPROVER:])
