"""Governance: under a policy with `governance`, a new version takes effect only after its quorum
approves it (device keys signing the statement bound to the new version's digest)."""

from __future__ import annotations

import base64
import json
import secrets

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient as HttpClient

from custody.app import create_app
from custody.approvals.approvers import add_approver
from custody.policy_versions.service import active_policy
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation

GOVERNED = """
version: 1
governance: {require_approvals: {count: 2, group: admins}}
rules:
  - {id: allow-all, match: {type: withdrawal}, action: allow}
"""
DENY_ALL = """
version: 1
governance: {require_approvals: {count: 2, group: admins}}
rules:
  - {id: deny-all, match: {type: withdrawal}, action: deny}
"""


@pytest.fixture
def governed(fresh_installation: Installation) -> Installation:
    fresh_installation.apply_policy(GOVERNED)  # the first version is applied by the operator
    return fresh_installation


def admin(inst: Installation, group: str = "admins") -> tuple[str, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    name = f"adm-{secrets.token_hex(3)}"
    with inst.runtime.db.write() as session:
        add_approver(session, name=name, groups=[group], device_key_pem=pem, actor="test")
    return name, key


def decide(
    http: HttpClient,
    version: int,
    digest: str,
    who: tuple[str, Ed25519PrivateKey],
    decision: str = "approve",
    *,
    sign_digest: str | None = None,
) -> int:
    name, key = who
    statement = rfc8785.dumps(
        {
            "type": "custody.policy_approval.v1",
            "version": str(version),
            "policy_digest": sign_digest or digest,
            "decision": decision,
            "approver": name,
        }
    )
    body = {
        "approver": name,
        "decision": decision,
        "signature": base64.b64encode(key.sign(bytes(statement))).decode(),
    }
    answer = http.post(f"/v1/policy/proposals/{version}/approvals", content=json.dumps(body))
    return answer.status_code


def propose(inst: Installation, text: str) -> tuple[int, str]:
    from custody.policy import load_policy_text
    from custody.policy_versions.service import apply

    loaded = load_policy_text(text, "next.yaml")
    with inst.runtime.db.write() as session:
        version = apply(session, loaded, source_name="next.yaml", actor="test")
        assert version.state == "proposed"
        return version.id, version.digest


def active_digest(inst: Installation) -> str:
    with inst.runtime.db.read() as session:
        current = active_policy(session)
        assert current is not None
        return current.digest


def test_a_proposal_takes_effect_only_after_its_quorum(governed: Installation) -> None:
    first, second = admin(governed), admin(governed)
    before = active_digest(governed)
    version, digest = propose(governed, DENY_ALL)
    wallet = governed.wallet()
    with HttpClient(create_app(governed.runtime, run_worker=False)) as http:
        api = Api(http.request, governed.client())
        assert api.create(withdrawal(wallet.name, nonce=0)).json()["status"] == "approved"
        assert decide(http, version, digest, first) == 200
        assert active_digest(governed) == before  # one of two: still the old policy
        assert decide(http, version, digest, second) == 200
        assert active_digest(governed) == digest
        assert api.create(withdrawal(wallet.name, nonce=1)).json()["status"] == "rejected"
    kinds = [e["kind"] for e in governed.ledger_entries() if e["data"].get("version") == version]
    assert kinds == ["policy.proposed", "policy.applied"]


def test_refusals_leave_the_proposal_pending(governed: Installation) -> None:
    first, outsider = admin(governed), admin(governed, group="treasury")
    version, digest = propose(governed, DENY_ALL)
    with HttpClient(create_app(governed.runtime, run_worker=False)) as http:
        assert decide(http, version, digest, first, sign_digest="0" * 64) == 401
        assert decide(http, version, digest, outsider) == 403
        assert decide(http, version, digest, first) == 200
        assert decide(http, version, digest, first) == 409
        assert decide(http, 99999, digest, first) == 404
    assert active_digest(governed) != digest


def test_a_rejection_rejects_the_proposal(governed: Installation) -> None:
    first, second = admin(governed), admin(governed)
    before = active_digest(governed)
    version, digest = propose(governed, DENY_ALL)
    with HttpClient(create_app(governed.runtime, run_worker=False)) as http:
        assert decide(http, version, digest, first, "reject") == 200
        assert decide(http, version, digest, second) == 409  # no longer a proposal
    assert active_digest(governed) == before
