"""Hostile numbers in the web app: a clear refusal (page or problem+json), never a 500, and
nothing stored. In process, no browser: these are server-side parses.

Only ASCII digits are digits here: int() and Decimal() also read Arabic-Indic or full-width ones
(as another number than the person saw) and fail on superscripts; json.loads fails past 4,300.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient as HttpClient

from custody.app import create_app
from custody.approvals.approvers import add_approver, hash_token
from custody.store.models import WebSession
from custody.web import sessions
from tests.support.api import DESTINATION
from tests.support.installation import Installation, WalletInfo

HOSTILE_JSON = b'{"challenge_id": ' + b"7" * 5000 + b', "credential": {}}'


@pytest.fixture(scope="module")
def app(installation: Installation) -> Iterator[HttpClient]:
    with HttpClient(create_app(installation.runtime, run_worker=False)) as client:
        yield client


@pytest.fixture(scope="module")
def origin(installation: Installation) -> dict[str, str]:
    return {"Origin": installation.settings.public_url}


@pytest.mark.parametrize("path", ["/app/api/login/verify", "/app/api/enrol/no-such-invite/verify"])
def test_signing_in_refuses_a_number_past_the_digit_limit(
    app: HttpClient, installation: Installation, origin: dict[str, str], path: str
) -> None:
    """Unauthenticated: anyone who reaches the server can send this."""
    before = installation.counts()
    response = app.post(path, content=HOSTILE_JSON, headers=origin)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "5000 digits" in response.json()["detail"]
    assert installation.counts() == before


# -- the maker form ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def maker_wallet(installation: Installation) -> WalletInfo:
    installation.allow_all_policy()
    return installation.wallet()


@pytest.fixture(scope="module")
def signed_in(installation: Installation, origin: dict[str, str]) -> tuple[dict[str, str], str]:
    """Headers of a signed-in maker's browser, and its CSRF token."""
    makers = installation.grant_maker()
    with installation.runtime.db.write() as session:
        approver = add_approver(
            session,
            name=f"maker-{secrets.token_hex(4)}",
            groups=["treasury", makers],
            device_key_pem=None,
            actor="test",
        )
        cookie = sessions.start(session, approver_id=approver.id, minutes=30)
        session.flush()
        row = session.get(WebSession, hash_token(cookie))
        assert row is not None
        csrf = row.csrf_token
    return origin | {"Cookie": f"{sessions.COOKIE_NAME}={cookie}"}, csrf


def _start(
    app: HttpClient,
    signed_in: tuple[dict[str, str], str],
    wallet: WalletInfo,
    **changes: str,
) -> tuple[int, str]:
    headers, csrf = signed_in
    form = {
        "csrf_token": csrf,
        "form_key": secrets.token_urlsafe(16),
        "wallet": wallet.name,
        "destination": DESTINATION,
        "amount": "0.001",
        "nonce": str(secrets.randbelow(10**9)),
        "gas": "21000",
        "max_fee_gwei": "30",
        "priority_fee_gwei": "1",
    } | changes
    response = app.post("/app/new", data=form, headers=headers, follow_redirects=False)
    return response.status_code, response.text


def test_the_form_used_below_starts_a_withdrawal(
    app: HttpClient,
    installation: Installation,
    signed_in: tuple[dict[str, str], str],
    maker_wallet: WalletInfo,
) -> None:
    """The cases below differ from this form in one field only, so that field is refused."""
    before = installation.counts()
    assert _start(app, signed_in, maker_wallet)[0] == 303
    assert installation.counts()["requests"] == before["requests"] + 1


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        pytest.param("nonce", "\u0663", "whole number", id="nonce-arabic-indic-3"),
        pytest.param("nonce", "\uff13", "whole number", id="nonce-fullwidth-3"),
        pytest.param("nonce", "\u00b2", "whole number", id="nonce-superscript-2"),
        pytest.param("nonce", "1\u0663", "whole number", id="nonce-mixed-digits"),
        pytest.param("gas", "\uff12\uff11\uff10\uff10\uff10", "whole number", id="gas-fullwidth"),
        pytest.param("max_fee_gwei", "\u0663\u0660", "whole number", id="max-fee-arabic-indic"),
        pytest.param("priority_fee_gwei", "\u00b9", "whole number", id="priority-superscript"),
        pytest.param("nonce", "9" * 31, "whole number", id="nonce-31-digits"),
        pytest.param("nonce", "9" * 5000, "whole number", id="nonce-5000-digits"),
        pytest.param("amount", "\uff11.5", "decimal number", id="amount-fullwidth"),
        pytest.param("amount", "1.\u0665", "decimal number", id="amount-arabic-indic-fraction"),
        pytest.param("amount", "\u00b2", "decimal number", id="amount-superscript"),
        pytest.param("amount", "1" * 5000, "decimal number", id="amount-5000-digits"),
    ],
)
def test_the_maker_form_takes_ascii_digits_only(
    app: HttpClient,
    installation: Installation,
    signed_in: tuple[dict[str, str], str],
    maker_wallet: WalletInfo,
    field: str,
    value: str,
    detail: str,
) -> None:
    before = installation.counts()
    status, page = _start(app, signed_in, maker_wallet, **{field: value})
    assert status == 422, page[:400]
    assert detail in page
    assert "digits 0-9" in page
    assert installation.counts() == before
