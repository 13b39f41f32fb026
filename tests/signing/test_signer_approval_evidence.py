"""A database insider gets no approval counted that the approver did not sign (issue 9 §1).

Before an approval counts towards the quorum, the signer verifies it again: its stored statement
must be exactly the one for this request, the digest the signer derived from the client's body,
and its decision; its signature (device key or passkey) must verify over that statement with the
approver's current key. Each attack writes the `approvals` table directly, as someone with
database access and none to approvers' keys would: nothing is signed, the request goes back to
`pending_approval`, and the ledger says which approval did not count and why.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import select, text, update

from custody.approvals.approvers import add_approver
from custody.signing.worker import SignerWorker
from custody.store.base import utcnow
from custody.store.models import Approval, Approver, WebauthnCredential
from custody.web import sessions
from tests.approvals.conftest import Device, pending, post_approval
from tests.signing.conftest import assert_not_signed
from tests.support.api import Api
from tests.support.installation import Installation, WalletInfo
from tests.support.passkeys import SoftPasskey, b64url, from_b64url

RequestView = dict[str, Any]  # the API's answer for a request


@dataclass
class PasskeyApprover:
    """An approver signed in to the approver app, with a passkey in software."""

    name: str
    passkey: SoftPasskey
    headers: dict[str, str]


@dataclass
class Scene:
    """A trading client, approvers and the signer around a wallet whose withdrawals need 2
    approvals from group treasury (quorum_wallet), and what an insider does to the rows."""

    api: Api
    http: HttpClient
    wallet: WalletInfo
    make_approver: Callable[..., Device]
    signer: SignerWorker
    installation: Installation

    # -- what the approvers do ----------------------------------------------------------------

    def pending(self, nonce: int = 0) -> RequestView:
        return pending(self.api, self.wallet, nonce)

    def approve(self, device: Device, request: RequestView, decision: str = "approve") -> str:
        """A genuine device-key decision over the API; the request's status after it."""
        body = device.body(request["id"], request["payload"]["digest"], decision)
        answer = post_approval(self.http, request["id"], body)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["status"])

    def approved_by_two(self) -> tuple[RequestView, Device, Device]:
        alice, bob = self.make_approver("treasury"), self.make_approver("treasury")
        request = self.pending()
        assert self.approve(alice, request) == "pending_approval"
        assert self.approve(bob, request) == "approved"
        return request, alice, bob

    def passkey_approver(self) -> PasskeyApprover:
        settings = self.installation.settings
        passkey = SoftPasskey(settings.web_rp_id, settings.public_url)
        name = f"pk-{secrets.token_hex(4)}"
        with self.installation.runtime.db.write() as session:
            approver = add_approver(
                session, name=name, groups=["treasury"], device_key_pem=None, actor="test"
            )
            # What enrolment stores once the passkey's registration verified.
            session.add(
                WebauthnCredential(
                    id=passkey.id,
                    approver_id=approver.id,
                    public_key=passkey.cose_public_key(),
                    sign_count=0,
                    created_at=utcnow(),
                )
            )
            cookie = sessions.start(session, approver_id=approver.id, minutes=30)
            signed_in = sessions.lookup(session, cookie)
            assert signed_in is not None
        headers = {
            "Origin": settings.public_url,
            "Cookie": f"{sessions.COOKIE_NAME}={cookie}",
            "X-CSRF-Token": signed_in.csrf_token,
            "Content-Type": "application/json",
        }
        return PasskeyApprover(name, passkey, headers)

    def approve_in_the_app(self, approver: PasskeyApprover, request: RequestView) -> str:
        """Approve with the approver app's two calls; the request's status after it."""
        base = f"/app/api/requests/{request['id']}/approve"
        prompt = self.http.post(f"{base}/options", headers=approver.headers)
        assert prompt.status_code == 200, prompt.text
        challenge = from_b64url(prompt.json()["publicKey"]["challenge"])
        body = {
            "challenge_id": prompt.json()["challenge_id"],
            "credential": approver.passkey.assertion(challenge),
        }
        answer = self.http.post(
            f"{base}/verify", content=json.dumps(body), headers=approver.headers
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["status"])

    # -- what the insider does -------------------------------------------------------------

    def stored(self, request: RequestView, name: str) -> Approval:
        with self.installation.runtime.db.read() as session:
            return session.execute(
                select(Approval).where(
                    Approval.request_id == request["id"],
                    Approval.approver_id == self._approver_id(name),
                )
            ).scalar_one()

    def insert(self, request: RequestView, name: str, *, statement: bytes, evidence: Any) -> None:
        """INSERT a device-key approval row behind custody's back."""
        with self.installation.runtime.db.write() as session:
            session.add(
                Approval(
                    request_id=request["id"],
                    approver_id=self._approver_id(name),
                    decision="approve",
                    statement=statement,
                    method="device_key",
                    evidence=json.dumps(evidence, sort_keys=True),
                    groups=json.dumps(["treasury"]),
                    created_at=utcnow(),
                )
            )

    def edit(self, request: RequestView, name: str, **columns: Any) -> None:
        """UPDATE one approval row behind custody's back."""
        with self.installation.runtime.db.write() as session:
            session.execute(
                update(Approval)
                .where(
                    Approval.request_id == request["id"],
                    Approval.approver_id == self._approver_id(name),
                )
                .values(**columns)
            )

    def revive(self, request: RequestView) -> None:
        """rejected -> approved: the status guard refuses it, so the insider lifts the guard for
        one UPDATE and puts it back (in one transaction: other tests share the database)."""
        move = text("UPDATE requests SET status = 'approved' WHERE id = :id")
        with self.installation.runtime.db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                guard = "ALTER TABLE requests {} TRIGGER requests_status_transition"
                conn.execute(text(guard.format("DISABLE")))
                conn.execute(move, {"id": request["id"]})
                conn.execute(text(guard.format("ENABLE")))
            else:
                created = conn.execute(
                    text("SELECT sql FROM sqlite_master WHERE name = 'requests_status_transition'")
                ).scalar_one()
                conn.execute(text("DROP TRIGGER requests_status_transition"))
                conn.execute(move, {"id": request["id"]})
                conn.exec_driver_sql(created)

    def _approver_id(self, name: str) -> str:
        with self.installation.runtime.db.read() as session:
            return session.execute(select(Approver.id).where(Approver.name == name)).scalar_one()

    # -- what the ledger must say ----------------------------------------------------------

    def discounted(self, request: RequestView) -> list[dict[str, Any]]:
        return [
            e["data"]
            for e in self.installation.ledger_entries("approval.discounted")
            if e["data"]["request"] == request["id"]
        ]

    def assert_sent_back(self, request: RequestView, approver: str, why: str) -> None:
        """Not signed, back to pending_approval, and the ledger names the approval and why."""
        assert self.signer.drain() == 0
        view = assert_not_signed(self.installation, self.api, request["id"])
        assert view["status"] == "pending_approval", view
        [discounted] = self.discounted(request)
        assert discounted["approver"] == approver
        assert why in discounted["reason"], discounted
        moves = [
            e["data"]
            for e in self.installation.ledger_entries("request.pending_approval")
            if e["data"]["request"] == request["id"]
        ]
        assert (moves[-1]["from"], moves[-1]["to"]) == ("approved", "pending_approval")
        assert "approvals that did not verify were not counted" in moves[-1]["reason"]
        assert approver in moves[-1]["reason"]

    def assert_signed(self, request: RequestView) -> None:
        assert self.signer.drain() == 1
        assert self.api.get(request["id"]).json()["status"] == "signed"


@pytest.fixture
def scene(
    api: Api,
    http: HttpClient,
    quorum_wallet: WalletInfo,
    make_approver: Callable[..., Device],
    signer: SignerWorker,
    installation: Installation,
) -> Scene:
    return Scene(api, http, quorum_wallet, make_approver, signer, installation)


def _raw_public_key(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


# -- device keys ------------------------------------------------------------------------------


def test_genuine_device_approvals_are_signed(scene: Scene) -> None:
    request, _, _ = scene.approved_by_two()
    scene.assert_signed(request)
    assert scene.discounted(request) == []


def test_an_inserted_approval_with_a_garbage_signature_does_not_count(scene: Scene) -> None:
    alice, bob = scene.make_approver("treasury"), scene.make_approver("treasury")
    request = scene.pending()
    scene.insert(
        request,
        bob.name,
        statement=bob.statement(request["id"], request["payload"]["digest"], "approve"),
        evidence={
            "signature": base64.b64encode(secrets.token_bytes(64)).decode(),
            "public_key": _raw_public_key(bob.key),
        },
    )
    # The approval endpoints count rows (each was verified as it was recorded): the forged one
    # completes the quorum there. The signer is the one who must not be fooled.
    assert scene.approve(alice, request) == "approved"
    scene.assert_sent_back(request, bob.name, "signature does not verify")


@pytest.mark.parametrize(
    ("statement", "why"),
    [
        ("as signed", "stored statement is not"),
        ("rewritten for this request", "signature does not verify"),
    ],
)
def test_an_approval_copied_from_another_request_does_not_count(
    scene: Scene, statement: str, why: str
) -> None:
    """Bob's approval of another request, with the statement he signed for it, or with its
    statement edited to name this request (then the signature is over something else)."""
    alice, bob = scene.make_approver("treasury"), scene.make_approver("treasury")
    wanted, other = scene.pending(nonce=0), scene.pending(nonce=1)
    assert scene.approve(bob, other) == "pending_approval"
    genuine = scene.stored(other, bob.name)
    scene.insert(
        wanted,
        bob.name,
        statement=genuine.statement
        if statement == "as signed"
        else bob.statement(wanted["id"], wanted["payload"]["digest"], "approve"),
        evidence=json.loads(genuine.evidence),
    )
    assert scene.approve(alice, wanted) == "approved"
    scene.assert_sent_back(wanted, bob.name, why)


def test_a_respelled_statement_does_not_count(scene: Scene) -> None:
    """The same fields in other bytes: the signer compares the exact bytes that were signed."""
    request, _, bob = scene.approved_by_two()
    signed = scene.stored(request, bob.name).statement
    scene.edit(request, bob.name, statement=json.dumps(json.loads(signed)).encode())
    scene.assert_sent_back(request, bob.name, "stored statement is not")


def test_a_rejection_flipped_to_an_approval_does_not_count(scene: Scene) -> None:
    alice, bob = scene.make_approver("treasury"), scene.make_approver("treasury")
    request = scene.pending()
    assert scene.approve(alice, request) == "pending_approval"
    assert scene.approve(bob, request, "reject") == "rejected"
    scene.edit(request, bob.name, decision="approve")  # its statement still says reject
    scene.revive(request)
    scene.assert_sent_back(request, bob.name, "stored statement is not")


@pytest.mark.parametrize(
    ("swap", "why"),
    [
        ("public key", "names a device key that is not the approver's"),
        ("public key and signature", "signature does not verify"),
    ],
)
def test_evidence_naming_another_device_key_does_not_count(
    scene: Scene, swap: str, why: str
) -> None:
    """The insider's own key in the evidence, with bob's signature or one of their own."""
    request, _, bob = scene.approved_by_two()
    stored = scene.stored(request, bob.name)
    insider = Ed25519PrivateKey.generate()
    evidence = json.loads(stored.evidence) | {"public_key": _raw_public_key(insider)}
    if swap == "public key and signature":
        evidence["signature"] = base64.b64encode(insider.sign(stored.statement)).decode()
    scene.edit(request, bob.name, evidence=json.dumps(evidence, sort_keys=True))
    scene.assert_sent_back(request, bob.name, why)


def test_a_forged_approval_beside_a_genuine_quorum_is_ledgered_and_the_quorum_signs(
    scene: Scene,
) -> None:
    alice, bob, carol = (scene.make_approver("treasury") for _ in range(3))
    request = scene.pending()
    assert scene.approve(alice, request) == "pending_approval"
    scene.insert(
        request,
        carol.name,
        statement=carol.statement(request["id"], request["payload"]["digest"], "approve"),
        evidence={"signature": "", "public_key": _raw_public_key(carol.key)},
    )
    assert scene.approve(bob, request) == "approved"
    scene.assert_signed(request)
    [discounted] = scene.discounted(request)
    assert discounted["approver"] == carol.name


# -- passkeys ---------------------------------------------------------------------------------


def test_genuine_passkey_approvals_are_signed(scene: Scene) -> None:
    alice, bob = scene.passkey_approver(), scene.passkey_approver()
    request = scene.pending()
    assert scene.approve_in_the_app(alice, request) == "pending_approval"
    assert scene.approve_in_the_app(bob, request) == "approved"
    scene.assert_signed(request)
    assert scene.discounted(request) == []


@pytest.mark.parametrize(
    ("tamper", "why"),
    [
        ("signature byte flipped", "passkey assertion does not verify"),
        ("signed with another approver's passkey", "passkey is not one registered to the approver"),
    ],
)
def test_a_tampered_passkey_approval_does_not_count(scene: Scene, tamper: str, why: str) -> None:
    """A flipped byte; or alice, an approver with database access, signs bob's statement with
    her own passkey and puts that in bob's row, to count twice."""
    alice, bob = scene.passkey_approver(), scene.passkey_approver()
    request = scene.pending()
    assert scene.approve_in_the_app(alice, request) == "pending_approval"
    assert scene.approve_in_the_app(bob, request) == "approved"
    stored = scene.stored(request, bob.name)
    evidence = json.loads(stored.evidence)
    if tamper == "signature byte flipped":
        signature = bytearray(from_b64url(evidence["signature"]))
        signature[len(signature) // 2] ^= 0x01
        evidence["signature"] = b64url(bytes(signature))
    else:
        assertion = alice.passkey.assertion(hashlib.sha256(stored.statement).digest())
        evidence = {
            "credential_id": assertion["id"],
            "authenticator_data": assertion["response"]["authenticatorData"],
            "client_data_json": assertion["response"]["clientDataJSON"],
            "signature": assertion["response"]["signature"],
        }
    scene.edit(request, bob.name, evidence=json.dumps(evidence, sort_keys=True))
    scene.assert_sent_back(request, bob.name, why)


def test_a_revived_rejection_is_rejected_again_whatever_the_policy_asks_now(
    scene: Scene,
) -> None:
    """The gap issue 9 left: a rejected request revived by an insider, after a policy change
    that no longer asks for approvals, would have been signed on its `approved` row."""
    alice, bob = scene.make_approver("treasury"), scene.make_approver("treasury")
    request = scene.pending()
    assert scene.approve(alice, request) == "pending_approval"
    assert scene.approve(bob, request, "reject") == "rejected"
    scene.revive(request)
    scene.installation.allow_all_policy()  # the quorum_wallet fixture puts it back anyway

    assert scene.signer.drain() == 0
    view = assert_not_signed(scene.installation, scene.api, request["id"])
    assert view["status"] == "rejected", view
    assert f"rejected by approver {bob.name}" in view["reason"]
    rechecked = [
        e["data"]
        for e in scene.installation.ledger_entries("policy.rechecked")
        if e["data"]["request"] == request["id"]
    ]
    assert rechecked[-1]["rejected_by"] == bob.name
    assert rechecked[-1]["allowed"] is False


def test_a_forged_rejection_stops_nothing_and_is_ledgered(scene: Scene) -> None:
    """An insider cannot veto with a rejection row of their own: it must verify too."""
    request, _, _ = scene.approved_by_two()
    carol = scene.make_approver("treasury")
    scene.insert(
        request,
        carol.name,
        statement=b"{}",
        evidence={"signature": "AAAA", "public_key": "00"},
    )
    scene.edit(request, carol.name, decision="reject")
    scene.assert_signed(request)
    [discounted] = scene.discounted(request)
    assert discounted["approver"] == carol.name
