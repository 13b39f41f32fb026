"""Withdrawals people start in the approver app carry evidence too (issue 9 §1): the app signs
each one's call with its own key in the HSM, naming the maker, and the signer checks that token
as it checks a trading client's. A database insider can neither write a maker request in nor
change who made it (the maker could then check their own request).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import text

from custody.approvals.approvers import add_approver, hash_token
from custody.signing.worker import SignerWorker
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


@pytest.fixture(scope="module")
def maker(installation: Installation) -> dict[str, Any]:
    """A signed-in approver in a group granted the maker permission."""
    name, group = f"maker-{secrets.token_hex(4)}", f"makers-{secrets.token_hex(4)}"
    with installation.runtime.db.write() as session:
        approver = add_approver(
            session, name=name, groups=[group], device_key_pem=None, actor="test"
        )
        cookie = sessions.start(session, approver_id=approver.id, minutes=30)
        session.flush()
        row = session.get(WebSession, hash_token(cookie))
        assert row is not None
        csrf, approver_id = row.csrf_token, approver.id
    ok_json(invoke(["approvers", "grant", group, "maker", "--json"], installation.env))
    return {
        "id": approver_id,
        "csrf": csrf,
        "cookie": {"Cookie": f"{sessions.COOKIE_NAME}={cookie}"},
    }


@pytest.fixture
def signer(installation: Installation) -> SignerWorker:
    worker = SignerWorker(installation.runtime, worker_id="maker-test")
    worker.drain()
    return worker


def _start(app: HttpClient, maker: dict[str, Any], wallet: WalletInfo) -> str:
    form = {
        "csrf_token": maker["csrf"],
        "form_key": secrets.token_urlsafe(16),
        "wallet": wallet.name,
        "destination": DESTINATION,
        "amount": "0.001",
        "nonce": str(secrets.randbelow(10**9)),
        "gas": "21000",
        "max_fee_gwei": "30",
        "priority_fee_gwei": "1",
    }
    answer = app.post("/app/new", data=form, headers=maker["cookie"], follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return answer.headers["location"].rsplit("/", 1)[-1]


def _row(installation: Installation, request_id: str) -> Any:
    with installation.runtime.db.engine.connect() as conn:
        return conn.execute(
            text("SELECT status, failure_reason FROM requests WHERE id = :i"), {"i": request_id}
        ).one()


def _insider(installation: Installation, sql: str, **params: Any) -> None:
    with installation.runtime.db.engine.begin() as conn:
        conn.execute(text(sql), params)


def test_a_maker_request_is_signed_from_the_apps_token(
    app: HttpClient, maker: dict[str, Any], installation: Installation, signer: SignerWorker
) -> None:
    installation.allow_all_policy()
    request_id = _start(app, maker, installation.wallet())
    assert _row(installation, request_id).status == "approved"
    assert signer.drain() == 1
    assert _row(installation, request_id).status == "signed"


def test_a_maker_request_written_in_by_an_insider_is_not_signed(
    app: HttpClient, maker: dict[str, Any], installation: Installation, signer: SignerWorker
) -> None:
    """A copy of a genuine maker request under a new id and nonce, without the app's token (it
    could not make one: the key is in the HSM)."""
    installation.allow_all_policy()
    genuine = _start(app, maker, installation.wallet())
    forged = "req_" + secrets.token_hex(12)
    columns = (
        "client_id, body_hash, type, wallet_id, asset, amount, destination, payload, digest, "
        "summary, policy_version_id, policy_decision, facts, first_response, client_body, "
        "signing_attempts, requested_by_approver, created_at, updated_at"
    )
    _insider(
        installation,
        f"INSERT INTO requests (id, idempotency_key, status, evm_nonce, {columns}) "
        f"SELECT :forged, :key, 'approved', evm_nonce + 1, {columns} FROM requests WHERE id = :g",
        forged=forged,
        key=secrets.token_hex(8),
        g=genuine,
    )
    signer.drain()
    row = _row(installation, forged)
    assert row.status == "failed"
    assert row.failure_reason.startswith("evidence: no client evidence")


def test_a_maker_changed_in_the_row_is_refused(
    app: HttpClient, maker: dict[str, Any], installation: Installation, signer: SignerWorker
) -> None:
    installation.allow_all_policy()
    request_id = _start(app, maker, installation.wallet())
    _insider(
        installation,
        "UPDATE requests SET requested_by_approver = :other WHERE id = :i",
        other="apr_" + secrets.token_hex(12),
        i=request_id,
    )
    assert signer.drain() == 0
    row = _row(installation, request_id)
    assert row.status == "failed"
    assert "maker is not the one the approver app signed" in row.failure_reason
