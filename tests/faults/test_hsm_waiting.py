"""What people see while the HSM is down, and what the signer does with a key that is truly
gone: the views read the signers' reports (custody.hsmhealth.status); a missing key on a token
found healthy is a definite answer and fails the request instead of leaving it waiting."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import PyKCS11
import pytest
from fastapi.testclient import TestClient as HttpClient

from custody.app import create_app
from custody.hsmhealth import status
from custody.hsmhealth.status import HsmState
from custody.requests import lifecycle
from custody.requests import repository as requests
from custody.requests.states import RequestStatus
from custody.signing.worker import SignerWorker
from custody.store.base import utcnow
from custody.web import sessions
from tests.support.api import Api, withdrawal
from tests.support.approver_app import session_cookie
from tests.support.installation import Installation

OUTAGE = "no HSM token labelled 'custody-dev' is present (signing failed: CKR_DEVICE_REMOVED)"


@pytest.fixture
def http(home: Installation) -> Iterator[HttpClient]:
    with HttpClient(create_app(home.runtime, run_worker=False)) as client:
        yield client


def _report(home: Installation, state: HsmState, detail: str, *, age: float = 0) -> None:
    with home.runtime.db.write() as session:
        status.report(
            session,
            process="signer-test",
            token_label="custody-dev",
            state=state,
            detail=detail,
            since=utcnow(),
        )
    if age:
        from custody.store.models import HsmStatus

        with home.runtime.db.write() as session:
            row = session.get(HsmStatus, ("signer-test", "custody-dev"))
            assert row is not None
            row.checked_at = utcnow() - timedelta(seconds=age)


def test_an_hsm_outage_shows_in_the_request_readyz_and_the_approver_app(
    http: HttpClient, home: Installation
) -> None:
    api = Api(http.request, home.client())
    wallet = home.wallet()
    home.apply_policy(
        "version: 1\nrules:\n  - {id: one, match: {type: withdrawal}, "
        "action: {require_approvals: {count: 1, group: treasury}}}\n"
    )
    created = api.create(withdrawal(wallet.name))
    request_id = created.json()["id"]
    assert created.json()["status"] == "pending_approval", created.text
    _report(home, HsmState.UNAVAILABLE, OUTAGE)
    assert "waiting" not in api.get(request_id).json()  # it waits for people first
    with home.runtime.db.write() as session:
        # Approved as the approvals service would leave it; only the views are tested here.
        request = requests.locked(session, request_id, for_update=True)
        lifecycle.move(session, request, RequestStatus.APPROVED, actor="test", reason="approved")

    _report(home, HsmState.UNAVAILABLE, OUTAGE)
    view = api.get(request_id).json()
    assert view["waiting"]["hsm"] == OUTAGE
    assert view["waiting"]["freezes"] == []
    assert view["waiting"]["reason"].startswith("waiting for the HSM")
    listed = api.call("GET", "/v1/requests").json()["items"]
    assert [item["waiting"] for item in listed if item["id"] == request_id] == [view["waiting"]]
    ready = http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["hsm"] == OUTAGE
    assert ready.headers["content-type"].startswith("application/problem+json")

    cookie = session_cookie(home, ["treasury"], prefix="viewer")
    page = http.get(
        f"/app/requests/{request_id}", headers={"Cookie": f"{sessions.COOKIE_NAME}={cookie}"}
    )
    assert page.status_code == 200, page.text
    assert 'id="waiting-hsm"' in page.text
    assert "CKR_DEVICE_REMOVED" in page.text
    assert 'id="frozen"' not in page.text

    # A report nobody refreshed for long is of a dead process: the API looks itself.
    _report(home, HsmState.UNAVAILABLE, OUTAGE, age=status.STALE_AFTER_SECONDS + 5)
    assert "waiting" not in api.get(request_id).json()
    assert http.get("/readyz").status_code == 200

    _report(home, HsmState.OK, "")
    assert "waiting" not in api.get(request_id).json()
    assert http.get("/readyz").status_code == 200


def test_a_key_gone_from_a_healthy_token_fails_the_request(
    http: HttpClient, home: Installation
) -> None:
    api = Api(http.request, home.client())
    wallet = home.wallet()
    request_id = api.create(withdrawal(wallet.name)).json()["id"]
    token = home.runtime.token()
    _destroy(home, wallet.key_label)

    SignerWorker(home.runtime, worker_id="w-gone").drain()
    view = api.get(request_id).json()
    assert view["status"] == "failed"
    assert wallet.key_label in view["reason"]
    assert home.runtime.token() is not token  # it was opened afresh before the answer counted
    assert "waiting" not in view


def _destroy(home: Installation, label: str) -> None:
    """Delete the key pair from the token behind custody's back (a real token lost it)."""
    from custody.runtime import hsm_credentials

    creds = hsm_credentials(home.settings)
    lib = PyKCS11.PyKCS11Lib().load(creds.module)
    slot = next(
        s
        for s in lib.getSlotList(tokenPresent=True)
        if lib.getTokenInfo(s).label.strip() == creds.token
    )
    session = lib.openSession(slot, PyKCS11.CKF_RW_SESSION)
    try:
        for handle in session.findObjects([(PyKCS11.CKA_LABEL, label)]):
            session.destroyObject(handle)
    finally:
        session.closeSession()
