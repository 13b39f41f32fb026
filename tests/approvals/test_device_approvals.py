"""Device-key approvals over the API (invariant 6 and 1): quorum, and every refusal."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from eth_account import Account
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import update

from custody.signing.worker import SignerWorker
from custody.store.base import utcnow
from custody.store.models import Request
from tests.approvals.conftest import QUORUM_POLICY, Device, pending, post_approval
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, WalletInfo
from tests.support.lifecycle import assert_histories_hold

TREASURY_AND_RISK_POLICY = """
version: 1
rules:
  - id: treasury-and-risk
    match: {{type: withdrawal, wallets: [{wallet}]}}
    action:
      require_approvals: {{all_of: [{{count: 1, group: treasury}}, {{count: 1, group: risk}}]}}
  - {{id: allow-all, match: {{type: withdrawal}}, action: allow}}
"""


@pytest.fixture
def all_of_wallet(installation: Installation, wallet: WalletInfo) -> Iterator[WalletInfo]:
    installation.apply_policy(TREASURY_AND_RISK_POLICY.format(wallet=wallet.name))
    try:
        yield wallet
    finally:
        installation.allow_all_policy()


def test_two_of_two_quorum_approves_and_the_request_is_signed(
    api: Api,
    http: HttpClient,
    quorum_wallet: WalletInfo,
    make_approver: Callable[..., Device],
    signer: SignerWorker,
    installation: Installation,
) -> None:
    alice, bob = make_approver("treasury"), make_approver("treasury")
    req = pending(api, quorum_wallet)
    digest = req["payload"]["digest"]
    first = post_approval(http, req["id"], alice.body(req["id"], digest))
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "pending_approval"
    assert signer.drain() == 0  # one approval is not a quorum
    second = post_approval(http, req["id"], bob.body(req["id"], digest))
    assert second.json()["status"] == "approved"
    assert signer.drain() == 1
    done = api.get(req["id"]).json()
    assert done["status"] == "signed"
    assert Account.recover_transaction(done["result"]["raw_transaction"]) == quorum_wallet.address
    assert {d["approver"] for d in done["approvals"]["decisions"]} == {alice.name, bob.name}
    # the ledger holds each statement and signature, re-verifiable offline
    added = [
        e
        for e in installation.ledger_entries("approval.added")
        if e["data"]["request"] == req["id"]
    ]
    assert len(added) == 2
    for entry in added:
        device = alice if entry["data"]["approver"] == alice.name else bob
        statement = entry["data"]["statement"].encode()
        assert statement == device.statement(req["id"], digest, "approve")
        device.key.public_key().verify(
            base64.b64decode(entry["data"]["evidence"]["signature"]), statement
        )
    assert_histories_hold(installation, [req["id"]])


def test_a_rejection_by_a_required_approver_rejects(
    api: Api,
    http: HttpClient,
    quorum_wallet: WalletInfo,
    make_approver: Callable[..., Device],
    signer: SignerWorker,
    installation: Installation,
) -> None:
    carol = make_approver("treasury")
    req = pending(api, quorum_wallet)
    answer = post_approval(
        http, req["id"], carol.body(req["id"], req["payload"]["digest"], "reject")
    )
    assert answer.json()["status"] == "rejected"
    assert signer.drain() == 0
    rejected = api.get(req["id"]).json()
    assert rejected["status"] == "rejected"
    assert rejected["reason"] == f"rejected by approver {carol.name}"
    assert_histories_hold(installation, [req["id"]])


@pytest.mark.parametrize("case", ["forged", "other-digest", "other-request", "other-decision"])
def test_signatures_bound_to_anything_else_are_refused(
    api: Api,
    http: HttpClient,
    quorum_wallet: WalletInfo,
    make_approver: Callable[..., Device],
    installation: Installation,
    case: str,
) -> None:
    dave = make_approver("treasury")
    req = pending(api, quorum_wallet)
    digest = req["payload"]["digest"]
    if case == "forged":
        impostor = Device(dave.name, make_approver("treasury").key)
        body = impostor.body(req["id"], digest)
    elif case == "other-digest":
        body = dave.body(req["id"], "0x" + "11" * 32)
    elif case == "other-request":
        body = dave.body("req_000000000000000000000000", digest).replace(b"", b"")
    else:  # signed "reject" but posted as "approve"
        signed = json.loads(dave.body(req["id"], digest, "reject"))
        body = json.dumps({**signed, "decision": "approve"}).encode()
    before = installation.counts()
    answer = post_approval(http, req["id"], body)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert api.get(req["id"]).json()["approvals"]["decisions"] == []
    assert installation.counts() == before


def test_outsiders_duplicates_disabled_and_unknown_approvers(
    api: Api,
    http: HttpClient,
    quorum_wallet: WalletInfo,
    make_approver: Callable[..., Device],
    installation: Installation,
) -> None:
    outsider, erin = make_approver("operations"), make_approver("treasury")
    req = pending(api, quorum_wallet)
    digest = req["payload"]["digest"]
    refused = post_approval(http, req["id"], outsider.body(req["id"], digest))
    assert refused.status_code == 403
    assert "not in a group" in refused.json()["detail"]
    assert post_approval(http, req["id"], erin.body(req["id"], digest)).status_code == 200
    again = post_approval(http, req["id"], erin.body(req["id"], digest))
    assert again.status_code == 409
    # a disabled approver's earlier approval stops counting, and they cannot approve again
    from custody.approvals.approvers import disable

    with installation.runtime.db.write() as session:
        disable(session, name=erin.name, actor="test")
    assert api.get(req["id"]).json()["approvals"]["quorum"]["received"]["treasury"] == []
    unknown = Device("nobody-here", erin.key)
    assert post_approval(http, req["id"], unknown.body(req["id"], digest)).status_code == 403
    no_device = make_approver("treasury", device=False)
    assert post_approval(http, req["id"], no_device.body(req["id"], digest)).status_code == 403


def test_a_requester_never_approves_its_own_request(
    api: Api,
    http: HttpClient,
    quorum_wallet: WalletInfo,
    make_approver: Callable[..., Device],
    installation: Installation,
) -> None:
    frank = make_approver("treasury")
    req = pending(api, quorum_wallet)
    from custody.approvals.approvers import by_name

    with installation.runtime.db.write() as session:
        approver_id = by_name(session, frank.name).id
        session.execute(
            update(Request).where(Request.id == req["id"]).values(requested_by_approver=approver_id)
        )
    answer = post_approval(http, req["id"], frank.body(req["id"], req["payload"]["digest"]))
    assert answer.status_code == 403
    assert "own request" in answer.json()["detail"]


def test_expired_requests_refuse_approvals_and_release_their_limit(
    api: Api,
    http: HttpClient,
    quorum_wallet: WalletInfo,
    make_approver: Callable[..., Device],
    installation: Installation,
    signer: SignerWorker,
) -> None:
    gina = make_approver("treasury")
    req = pending(api, quorum_wallet)
    with installation.runtime.db.write() as session:
        session.execute(
            update(Request)
            .where(Request.id == req["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    answer = post_approval(http, req["id"], gina.body(req["id"], req["payload"]["digest"]))
    assert answer.status_code == 403
    assert "expired" in answer.json()["detail"]
    assert api.get(req["id"]).json()["status"] == "expired"
    # the sweep finds the others; expired requests no longer hold their nonce
    other = pending(api, quorum_wallet, nonce=1)
    with installation.runtime.db.write() as session:
        session.execute(
            update(Request)
            .where(Request.id == other["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert signer.expire_due() >= 1
    assert api.get(other["id"]).json()["status"] == "expired"
    assert pending(api, quorum_wallet, nonce=1)["status"] == "pending_approval"
    assert_histories_hold(installation, [req["id"], other["id"]])


def test_the_signer_recounts_the_quorum_before_signing(
    api: Api,
    http: HttpClient,
    quorum_wallet: WalletInfo,
    make_approver: Callable[..., Device],
    installation: Installation,
    signer: SignerWorker,
) -> None:
    """Approved by two, then one is disabled before the signer runs: no signature (invariant 6)."""
    hank, ivy = make_approver("treasury"), make_approver("treasury")
    req = pending(api, quorum_wallet)
    digest = req["payload"]["digest"]
    post_approval(http, req["id"], hank.body(req["id"], digest))
    assert (
        post_approval(http, req["id"], ivy.body(req["id"], digest)).json()["status"] == "approved"
    )
    from custody.approvals.approvers import disable

    with installation.runtime.db.write() as session:
        disable(session, name=ivy.name, actor="test")
    assert signer.drain() == 0
    state = api.get(req["id"]).json()
    assert state["status"] == "pending_approval"
    assert "result" not in state


def test_an_approver_in_both_groups_counts_where_needed_and_the_signer_agrees(
    api: Api,
    http: HttpClient,
    all_of_wallet: WalletInfo,
    make_approver: Callable[..., Device],
    signer: SignerWorker,
) -> None:
    """all_of 1 treasury + 1 risk: jo (treasury and risk) first, then kim (treasury only). Jo must
    count for risk; counting jo for treasury would leave risk short although the quorum exists."""
    jo, kim = make_approver("treasury", "risk"), make_approver("treasury")
    req = pending(api, all_of_wallet)
    digest = req["payload"]["digest"]
    first = post_approval(http, req["id"], jo.body(req["id"], digest)).json()
    assert first["status"] == "pending_approval"
    second = post_approval(http, req["id"], kim.body(req["id"], digest)).json()
    assert second["status"] == "approved", second
    assert second["quorum"]["received"] == {"risk": [jo.name], "treasury": [kim.name]}
    assert signer.drain() == 1  # the signer's re-count reaches the same quorum
    assert api.get(req["id"]).json()["status"] == "signed"


def test_a_request_the_recheck_escalates_can_be_approved_and_expires_in_time(
    api: Api,
    http: HttpClient,
    wallet: WalletInfo,
    make_approver: Callable[..., Device],
    installation: Installation,
    signer: SignerWorker,
) -> None:
    """Allowed at intake, then the policy asks for two treasury approvals before it is signed: the
    request waits under the requirement in force now, with a fresh deadline, instead of waiting
    forever under its old decision that nobody could meet."""
    installation.allow_all_policy()
    created = api.create(withdrawal(wallet.name, nonce=4)).json()
    assert created["status"] == "approved"
    lena = make_approver("treasury")
    installation.apply_policy(QUORUM_POLICY.format(wallet=wallet.name, expires="1h"))
    try:
        before = utcnow()
        assert signer.drain() == 0
        waiting = api.get(created["id"]).json()
        assert waiting["status"] == "pending_approval"
        assert waiting["approvals"]["quorum"]["required"] == [{"group": "treasury", "count": 2}]
        deadline = datetime.fromisoformat(waiting["approvals"]["expires_at"])
        assert before + timedelta(minutes=59) < deadline <= utcnow() + timedelta(hours=1)

        digest = created["payload"]["digest"]
        first = post_approval(http, created["id"], lena.body(created["id"], digest))
        assert first.status_code == 200, first.text
        second = make_approver("treasury")
        done = post_approval(http, created["id"], second.body(created["id"], digest)).json()
        assert done["status"] == "approved"
        assert signer.drain() == 1
    finally:
        installation.allow_all_policy()
    assert api.get(created["id"]).json()["status"] == "signed"
    assert_histories_hold(installation, [created["id"]])
