"""Enrol a passkey, sign in, approve in the browser; a second approver completes a 2-of-2."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eth_account import Account
from sqlalchemy import select
from webauthn.helpers import decode_credential_public_key
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.decode_credential_public_key import (
    DecodedEC2PublicKey,
    DecodedOKPPublicKey,
)

from custody.signing.worker import SignerWorker
from custody.store.models import Approval, WebauthnCredential
from tests.support.api import Api
from tests.support.installation import Installation, WalletInfo
from tests.web.conftest import Phone, WebServer, pending

pytestmark = pytest.mark.slow


def test_two_approvers_with_passkeys_get_a_request_signed(
    phones: Callable[..., tuple[Phone, str]],
    api: Api,
    quorum_wallet: WalletInfo,
    web_server: WebServer,
    installation: Installation,
) -> None:
    alice, alice_invite = phones()
    bob, bob_invite = phones()
    req = pending(api, quorum_wallet)
    digest = req["payload"]["digest"]

    # alice: invite link -> passkey -> sign in -> her queue shows the request
    alice.enrol(alice_invite)
    alice.login()
    item = alice.page.locator(f'#queue a[href="/app/requests/{req["id"]}"]')
    assert "0.001 ETH" in item.inner_text()
    assert "Exchange deposit" in item.inner_text()

    page = alice.open_request(req["id"])
    assert page.locator("#digest").inner_text() == digest
    assert page.locator("#destination").inner_text() == req["destination"]
    assert "Exchange deposit" in page.inner_text("body")
    assert "0.001 ETH" in page.inner_text(".summary")
    answer = alice.decide("approve")
    assert answer == {
        "status": 200,
        "body": {"request": req["id"], "status": "pending_approval"},
    }
    page.locator("#decisions").get_by_text(alice.name).wait_for()
    assert api.get(req["id"]).json()["status"] == "pending_approval"  # one is not a quorum

    # bob, on his own phone, completes the 2-of-2 quorum
    bob.enrol(bob_invite)
    bob.login()
    bob.open_request(req["id"])
    assert bob.decide("approve")["body"]["status"] == "approved"

    SignerWorker(web_server.runtime, worker_id="web-test").drain()
    done = api.get(req["id"]).json()
    assert done["status"] == "signed"
    assert Account.recover_transaction(done["result"]["raw_transaction"]) == quorum_wallet.address

    alice.page.reload()
    assert alice.page.locator("#status").inner_text() == "signed"
    alice.go("/app/history")
    assert alice.page.locator(f'#history a[href="/app/requests/{req["id"]}"]').count() == 1

    # each approval is a WebAuthn assertion over SHA-256 of the statement, kept as evidence
    with installation.runtime.db.read() as session:
        approvals = (
            session.execute(
                select(Approval).where(Approval.request_id == req["id"]).order_by(Approval.id)
            )
            .scalars()
            .all()
        )
        assert [a.method for a in approvals] == ["webauthn", "webauthn"]
        counts = [
            c.sign_count
            for c in session.execute(
                select(WebauthnCredential).where(
                    WebauthnCredential.approver_id.in_([alice.approver_id, bob.approver_id])
                )
            ).scalars()
        ]
    assert all(count >= 2 for count in counts)  # sign-in and approval each moved the counter
    added = [
        e
        for e in installation.ledger_entries("approval.added")
        if e["data"]["request"] == req["id"]
    ]
    assert sorted(e["data"]["approver"] for e in added) == sorted([alice.name, bob.name])
    for entry in added:
        evidence = entry["data"]["evidence"]
        assert set(evidence) == {
            "credential_id",
            "authenticator_data",
            "client_data_json",
            "signature",
        }
        assert_assertion_verifies(installation, entry["data"]["statement"].encode(), evidence)


def assert_assertion_verifies(
    installation: Installation, statement: bytes, evidence: dict[str, str]
) -> None:
    """Re-verify an approval as an auditor would: challenge = SHA-256(statement)."""

    def b64(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    client_data = json.loads(b64(evidence["client_data_json"]))
    challenge = b64(client_data["challenge"])
    assert challenge == hashlib.sha256(statement).digest()
    assert client_data["type"] == "webauthn.get"
    with installation.runtime.db.read() as session:
        credential = session.get(WebauthnCredential, evidence["credential_id"])
        assert credential is not None
        cose = decode_credential_public_key(credential.public_key)
    signed = (
        b64(evidence["authenticator_data"])
        + hashlib.sha256(b64(evidence["client_data_json"])).digest()
    )
    signature = b64(evidence["signature"])
    if cose.alg == COSEAlgorithmIdentifier.EDDSA:
        assert isinstance(cose, DecodedOKPPublicKey)
        Ed25519PublicKey.from_public_bytes(cose.x).verify(signature, signed)
    else:
        assert isinstance(cose, DecodedEC2PublicKey)
        assert cose.alg == COSEAlgorithmIdentifier.ECDSA_SHA_256
        key = ec.EllipticCurvePublicNumbers(
            int.from_bytes(cose.x, "big"), int.from_bytes(cose.y, "big"), ec.SECP256R1()
        ).public_key()
        key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
