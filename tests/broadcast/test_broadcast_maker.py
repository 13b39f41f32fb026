"""A person with the maker permission starts a withdrawal in the approver app on a connected
chain, leaving the transaction settings blank: custody fills them, another approver approves,
and it is confirmed on the node."""

from __future__ import annotations

import secrets

from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import select

from custody.app import create_app
from custody.approvals.approvers import add_approver, hash_token
from custody.store.models import Request, WebSession
from custody.web import sessions
from tests.broadcast.conftest import Connected
from tests.support.api import DESTINATION
from tests.support.cli import invoke


def test_a_maker_leaves_the_transaction_settings_to_custody(connected: Connected) -> None:
    inst, anvil, wallet = connected.installation, connected.anvil, connected.wallet
    group = f"makers-{secrets.token_hex(3)}"
    assert invoke(["approvers", "grant", group, "maker"], inst.env).returncode == 0
    with inst.runtime.db.write() as session:
        maker = add_approver(
            session,
            name=f"maker-{secrets.token_hex(3)}",
            groups=[group],
            device_key_pem=None,
            actor="test",
        )
        cookie = sessions.start(session, approver_id=maker.id, minutes=30)
        session.flush()
        row = session.get(WebSession, hash_token(cookie))
        assert row is not None
        csrf = row.csrf_token
    start = anvil.nonce(wallet.address)

    with HttpClient(create_app(inst.runtime, run_worker=False)) as app:
        app.headers["Origin"] = inst.settings.public_url
        page = app.get("/app/new", headers={"Cookie": f"{sessions.COOKIE_NAME}={cookie}"})
        assert page.status_code == 200
        assert f'value="{wallet.name}" data-nonce=""' in page.text
        form = {
            "csrf_token": csrf,
            "form_key": secrets.token_urlsafe(16),
            "wallet": wallet.name,
            "destination": DESTINATION,
            "amount": "0.001",
            "nonce": "",
            "gas": "",
            "max_fee_gwei": "",
            "priority_fee_gwei": "",
        }
        posted = app.post(
            "/app/new",
            data=form,
            headers={"Cookie": f"{sessions.COOKIE_NAME}={cookie}"},
            follow_redirects=False,
        )
        assert posted.status_code == 303, posted.text

    with inst.runtime.db.read() as session:
        [request] = session.scalars(
            select(Request).where(Request.requested_by_approver == maker.id)
        ).all()
        request_id, nonce = request.id, request.evm_nonce
    assert nonce == start
    # The module's policy allows it; a maker's request is signed once allowed.
    connected.settle([request_id], lambda s: s == "confirmed")
    assert anvil.nonce(wallet.address) == start + 1
