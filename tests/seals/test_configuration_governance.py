"""Under governance, configuration is trusted only when the governance quorum signed it (issue 9
§1): whoever holds the HSM PIN seals every change with the root key, but a seal that widens what
can be signed (a client, a client key, an approver...) takes effect for the signer only once the
quorum of the configuration in effect before it approved it with their device keys.

The operator here is hostile or merely early: their changes are sealed the normal way, through
custody's own sessions (root key in the HSM), or with `seal()` after raw edits, as someone with
the PIN and database access could. The signer must leave what relies on them waiting, without
freezing, until the quorum approves, and never count an approval that does not verify.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import text

from custody.app import create_app
from custody.approvals.approvers import add_approver
from custody.approvals.approvers import disable as disable_approver
from custody.clients.service import disable as disable_client
from custody.seals import repository as seal_rows
from custody.seals.service import seal
from custody.signing.worker import SignerWorker
from tests.support.api import Api, withdrawal
from tests.support.cli import invoke
from tests.support.installation import ClientKeys, Installation, WalletInfo

GOVERNED = """
version: 1
governance: {require_approvals: {count: 2, group: admins}}
rules:
  - {id: allow-all, match: {type: withdrawal}, action: allow}
"""
NEXT = """
version: 1
governance: {require_approvals: {count: 2, group: admins}}
rules:
  - id: allow-small
    match: {type: withdrawal, assets: [ETH], amount_lte: "1000000"}
    action: allow
"""
Admin = tuple[str, Ed25519PrivateKey]


class Governed:
    def __init__(self, inst: Installation, http: HttpClient, wallet: WalletInfo) -> None:
        self.inst, self.http, self.wallet = inst, http, wallet
        self.signer = SignerWorker(inst.runtime)
        # The operator staffs the installation; from the seal that gives the governance group
        # enough members to meet its quorum on, the quorum governs.
        self.admins = [self.approver("admins") for _ in range(3)]
        self.desk = self.api(inst.client())
        self.spare = inst.client()
        inst.apply_policy(GOVERNED)

    def api(self, client: ClientKeys) -> Api:
        return Api(self.http.request, client)

    def approver(self, group: str) -> Admin:
        key = Ed25519PrivateKey.generate()
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        name = f"{group}-{secrets.token_hex(3)}"
        with self.inst.runtime.db.write() as session:
            add_approver(session, name=name, groups=[group], device_key_pem=pem, actor="test")
        return name, key

    def newest_seal(self) -> tuple[int, str]:
        with self.inst.runtime.db.read() as session:
            row = seal_rows.newest_seal(session)
            assert row is not None
            return row.epoch, row.digest

    def signature(self, who: Admin, epoch: int, digest: str, decision: str = "approve") -> str:
        name, key = who
        statement = rfc8785.dumps(
            {
                "type": "custody.configuration_approval.v1",
                "epoch": str(epoch),
                "digest": digest,
                "decision": decision,
                "approver": name,
            }
        )
        return base64.b64encode(key.sign(bytes(statement))).decode()

    def decide(self, who: Admin, epoch: int, digest: str, decision: str = "approve") -> Any:
        body = {
            "approver": who[0],
            "decision": decision,
            "signature": self.signature(who, epoch, digest, decision),
        }
        return self.http.post(
            f"/v1/configuration/seals/{epoch}/approvals", content=json.dumps(body)
        )

    def withdraw(self, api: Api, nonce: int) -> str:
        created = api.create(withdrawal(self.wallet.name, amount="1000", nonce=nonce)).json()
        assert created["status"] == "approved", created
        return str(created["id"])

    @staticmethod
    def status(api: Api, request_id: str) -> str:
        return str(api.get(request_id).json()["status"])

    def waiting(self) -> list[str]:
        return [
            e["data"]["reason"] for e in self.inst.ledger_entries("configuration.awaiting_quorum")
        ]

    def refused(self) -> list[dict[str, Any]]:
        return self.inst.ledger_entries("configuration.refused")

    def raw(self, sql: str, **params: Any) -> None:
        with self.inst.runtime.db.engine.begin() as conn:
            conn.execute(text(sql), params)


@pytest.fixture
def governed(fresh_installation: Installation) -> Iterator[Governed]:
    wallet = fresh_installation.wallet()
    with HttpClient(create_app(fresh_installation.runtime, run_worker=False)) as http:
        yield Governed(fresh_installation, http, wallet)


def test_a_client_the_operator_adds_signs_only_once_the_quorum_approves(
    governed: Governed,
) -> None:
    g = governed
    newcomer = g.api(g.inst.client())  # sealed by the root key as it committed
    epoch, digest = g.newest_seal()
    waiting = g.withdraw(newcomer, nonce=0)
    known = g.withdraw(g.desk, nonce=1)
    assert g.signer.drain() == 1  # the staffed client's request is signed; the newcomer's waits
    assert g.status(g.desk, known) == "signed"
    assert g.status(newcomer, waiting) == "approved"
    [reason] = g.waiting()
    assert f"clients/{newcomer.client.id}: added" in reason
    assert g.refused() == []
    assert g.inst.ledger_entries("signing.frozen") == []

    assert g.decide(g.admins[0], epoch, digest).status_code == 200
    assert g.signer.drain() == 0  # one of two
    assert g.decide(g.admins[1], epoch, digest).status_code == 200
    assert g.signer.drain() == 1
    assert g.status(newcomer, waiting) == "signed"
    recorded = [
        e["data"]
        for e in g.inst.ledger_entries("approval.added")
        if "configuration_seal" in e["data"]
    ]
    assert [(d["configuration_seal"], d["decision"]) for d in recorded] == [
        (epoch, "approve"),
        (epoch, "approve"),
    ]


def test_a_client_key_swapped_and_sealed_with_the_pin_signs_nothing(governed: Governed) -> None:
    """The operator with the PIN and database access puts in a key they hold and seals it."""
    g = governed
    stolen = Ed25519PrivateKey.generate()
    pem = stolen.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    g.raw(
        "UPDATE clients SET public_key_pem = :p WHERE id = :i", p=pem.decode(), i=g.desk.client.id
    )
    with g.inst.runtime.db.write() as session:
        sealed = seal(
            session,
            g.inst.runtime.token(),
            key_label=g.inst.runtime.settings.root_key_label,
            actor="operator",
            reason="rotation",
        )
    assert sealed is not None
    thief = g.api(ClientKeys(g.desk.client.id, g.desk.client.name, stolen))
    request_id = g.withdraw(thief, nonce=0)
    assert g.signer.drain() == 0
    assert g.status(thief, request_id) == "approved"
    [reason] = g.waiting()
    assert f"clients/{g.desk.client.id}: changed (public_key_pem)" in reason
    assert g.refused() == []


def test_approvals_that_do_not_verify_count_for_nothing(governed: Governed) -> None:
    g = governed
    # a device key, but not a governor; adding them widens too, so it is part of what waits
    outsider = g.approver("treasury")
    newcomer = g.api(g.inst.client())
    epoch, digest = g.newest_seal()
    request_id = g.withdraw(newcomer, nonce=0)

    assert g.decide(g.admins[0], epoch, "0" * 64).status_code == 401  # another digest
    assert g.decide(g.admins[0], epoch + 1, digest).status_code == 404
    assert g.decide(outsider, epoch, digest).status_code == 403  # not a governor
    assert g.decide(g.admins[0], epoch, digest).status_code == 200
    assert g.decide(g.admins[0], epoch, digest).status_code == 409
    # rows written behind custody's back: a governor's signature over another seal's statement,
    # and a non-governor's valid one
    with g.inst.runtime.db.read() as session:
        rows = session.execute(text("SELECT name, id FROM approvers")).all()
    ids = {str(name): str(approver_id) for name, approver_id in rows}
    for who, signature in (
        (g.admins[1], g.signature(g.admins[1], epoch - 1, digest)),
        (outsider, g.signature(outsider, epoch, digest)),
    ):
        g.raw(
            "INSERT INTO configuration_approvals "
            "(epoch, digest, approver_id, decision, statement, signature, created_at) "
            "VALUES (:e, :d, :a, 'approve', :s, :sig, CURRENT_TIMESTAMP)",
            e=epoch,
            d=digest,
            a=ids[who[0]],
            s=b"{}",
            sig=signature,
        )
    assert g.signer.drain() == 0
    assert g.status(newcomer, request_id) == "approved"
    assert g.refused() == []


def test_a_rejection_keeps_a_seal_out_whatever_else_approves(governed: Governed) -> None:
    g = governed
    newcomer = g.api(g.inst.client())
    epoch, digest = g.newest_seal()
    request_id = g.withdraw(newcomer, nonce=0)
    assert g.decide(g.admins[2], epoch, digest, "reject").status_code == 200
    assert g.decide(g.admins[0], epoch, digest).status_code == 200
    assert g.decide(g.admins[1], epoch, digest).status_code == 200
    assert g.signer.drain() == 0
    assert g.status(newcomer, request_id) == "approved"

    listed = invoke(["config", "pending", "--json"], g.inst.env)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    pending = json.loads(listed.stdout)
    assert pending["in_effect"] < epoch
    [item] = pending["pending"]
    assert item["epoch"] == epoch
    assert item["rejected_by"] == [g.admins[2][0]]
    assert f"clients/{newcomer.client.id}: added" in item["needs_quorum"]


def test_narrowing_changes_and_prices_take_effect_alone(governed: Governed) -> None:
    g = governed
    with g.inst.runtime.db.write() as session:
        disable_client(session, name=g.spare.name, actor="operator")
    priced = invoke(
        ["prices", "set", "ETH", "3000", "--decimals", "18", "--chain", "ethereum"], g.inst.env
    )
    assert priced.returncode == 0, priced.stdout + priced.stderr
    request_id = g.withdraw(g.desk, nonce=0)
    assert g.signer.drain() == 1  # neither change waits for anyone
    assert g.status(g.desk, request_id) == "signed"
    assert g.waiting() == []


def test_disabling_governors_hands_nothing_back_to_the_operator(governed: Governed) -> None:
    """Disabling narrows, so it takes effect alone; the governance stays pinned all the same."""
    g = governed
    with g.inst.runtime.db.write() as session:
        for name, _ in g.admins:
            disable_approver(session, name=name, actor="operator")
    newcomer = g.api(g.inst.client())
    request_id = g.withdraw(newcomer, nonce=0)
    assert g.signer.drain() == 0
    assert g.status(newcomer, request_id) == "approved"
    assert len(g.waiting()) == 1


def test_a_policy_the_quorum_approved_needs_no_second_approval(governed: Governed) -> None:
    from custody.policy import load_policy_text
    from custody.policy_versions.service import apply

    g = governed
    loaded = load_policy_text(NEXT, "next.yaml")
    with g.inst.runtime.db.write() as session:
        version = apply(session, loaded, source_name="next.yaml", actor="operator")
        version_id, digest = version.id, version.digest
    for name, key in g.admins[:2]:
        statement = rfc8785.dumps(
            {
                "type": "custody.policy_approval.v1",
                "version": str(version_id),
                "policy_digest": digest,
                "decision": "approve",
                "approver": name,
            }
        )
        body = {
            "approver": name,
            "decision": "approve",
            "signature": base64.b64encode(key.sign(bytes(statement))).decode(),
        }
        answer = g.http.post(
            f"/v1/policy/proposals/{version_id}/approvals", content=json.dumps(body)
        )
        assert answer.status_code == 200, answer.text
    request_id = g.withdraw(g.desk, nonce=0)
    assert g.signer.drain() == 1
    assert g.status(g.desk, request_id) == "signed"
    assert g.waiting() == []


def test_the_cli_records_approvals(governed: Governed) -> None:
    g = governed
    newcomer = g.api(g.inst.client())
    epoch, digest = g.newest_seal()
    request_id = g.withdraw(newcomer, nonce=0)
    shown = invoke(["config", "pending"], g.inst.env)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"seal {epoch} waits for the governance quorum" in shown.stdout
    for who in g.admins[:2]:
        done = invoke(
            [
                "config",
                "approve",
                str(epoch),
                "--approver",
                who[0],
                "--signature",
                g.signature(who, epoch, digest),
            ],
            g.inst.env,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    assert "it is in effect" in done.stdout
    bad = invoke(
        ["config", "approve", str(epoch), "--approver", g.admins[2][0], "--signature", "AAAA"],
        g.inst.env,
    )
    assert bad.returncode != 0
    assert len(bad.stderr.strip().splitlines()) == 1
    assert g.signer.drain() == 1
    assert g.status(newcomer, request_id) == "signed"
