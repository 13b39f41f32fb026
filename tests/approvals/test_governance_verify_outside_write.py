"""Governance decisions are verified before the write transaction (issue 9): anyone may post a
decision on a policy or ceremony proposal, and a signature check under the ledger lock would stop
every other writer while it runs.

The device-key verifier is wrapped to look, while it runs, at the database: how many write
transactions (`Database.write`, of any runtime, the CLI's included) are open, and whether another
connection could take the ledger lock at once (SQLite: `BEGIN IMMEDIATE` with no busy timeout;
PostgreSQL: the ledger head row `FOR UPDATE NOWAIT`). What can change meanwhile (the approver,
the proposal) is checked again under the lock.
"""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from custody.app import create_app
from custody.approvals import ceremony_approvals, policy_approvals
from custody.approvals.approvers import add_approver, disable
from custody.approvals.repository import approver_named
from custody.policy import load_policy_text
from custody.policy_versions.service import apply
from custody.store.database import Database, sqlite_file
from custody.store.models import CeremonyApproval, PolicyApproval
from tests.support.cli import invoke, ok_json
from tests.support.installation import Installation

GOVERNED = """
version: 1
governance: {require_approvals: {count: 2, group: admins}}
rules:
  - {id: allow-all, match: {type: withdrawal}, action: allow}
"""
DENY_ALL = GOVERNED.replace("allow-all", "deny-all").replace("action: allow", "action: deny")

Verifier = Callable[[str, str, bytes], bool]


@dataclass
class Watch:
    installation: Installation
    open_writes: int = 0
    writes_begun: int = 0
    seen: list[tuple[bytes, int, bool]] = field(default_factory=list)
    """(statement, write transactions open, whether the ledger lock was free) per verification."""

    def ledger_lock_is_free(self) -> bool:
        url = self.installation.runtime.db.url
        path = sqlite_file(url)
        if path is not None:
            probe = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
                return True
            except sqlite3.OperationalError:
                return False
            finally:
                probe.close()
        engine = create_engine(url, poolclass=NullPool)
        try:
            with engine.connect() as conn, conn.begin():
                conn.execute(text("SELECT size FROM ledger_head WHERE id = 1 FOR UPDATE NOWAIT"))
            return True
        except OperationalError:
            return False
        finally:
            engine.dispose()


@pytest.fixture
def governed(fresh_installation: Installation) -> Installation:
    fresh_installation.apply_policy(GOVERNED)
    return fresh_installation


@pytest.fixture
def watch(governed: Installation, monkeypatch: pytest.MonkeyPatch) -> Watch:
    watch = Watch(governed)
    original_write = Database.write

    @contextmanager
    def counted_write(self: Database) -> Iterator[Session]:
        with original_write(self) as session:
            watch.open_writes += 1
            watch.writes_begun += 1
            try:
                yield session
            finally:
                watch.open_writes -= 1

    monkeypatch.setattr(Database, "write", counted_write)
    for module in (ceremony_approvals, policy_approvals):
        monkeypatch.setattr(
            module, "verify_device_signature", _watched(watch, module.verify_device_signature)
        )
    return watch


def _watched(watch: Watch, verify: Verifier) -> Verifier:
    def watched(public_key_hex: str, signature: str, statement: bytes) -> bool:
        watch.seen.append((statement, watch.open_writes, watch.ledger_lock_is_free()))
        return verify(public_key_hex, signature, statement)

    return watched


@dataclass(frozen=True)
class Admin:
    name: str
    key: Ed25519PrivateKey

    def body(self, statement: dict[str, str], decision: str = "approve") -> dict[str, str]:
        return {
            "approver": self.name,
            "decision": decision,
            "signature": self.sign(statement, decision),
        }

    def sign(self, statement: dict[str, str], decision: str = "approve") -> str:
        signed = self.statement(statement, decision)
        return base64.b64encode(self.key.sign(signed)).decode()

    def statement(self, statement: dict[str, str], decision: str = "approve") -> bytes:
        return bytes(rfc8785.dumps(statement | {"decision": decision, "approver": self.name}))


def admin(inst: Installation) -> Admin:
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    name = f"adm-{secrets.token_hex(3)}"
    with inst.runtime.db.write() as session:
        add_approver(session, name=name, groups=["admins"], device_key_pem=pem, actor="test")
    return Admin(name, key)


def propose_policy(inst: Installation) -> dict[str, str]:
    loaded = load_policy_text(DENY_ALL, "next.yaml")
    with inst.runtime.db.write() as session:
        version = apply(session, loaded, source_name="next.yaml", actor="test")
        return {
            "type": "custody.policy_approval.v1",
            "version": str(version.id),
            "policy_digest": version.digest,
        }


def propose_ceremony(inst: Installation) -> dict[str, str]:
    subject = {"label": f"k-{secrets.token_hex(4)}"}
    with inst.runtime.db.write() as session:
        row = ceremony_approvals.propose(session, "retire-key", subject, "test")
        return ceremony_approvals.statement_template(row)


def post(http: HttpClient, url: str, body: dict[str, Any]) -> Any:
    return http.post(url, content=json.dumps(body).encode())


def test_policy_decisions_are_verified_with_no_write_transaction_open(
    governed: Installation, watch: Watch
) -> None:
    first, second = admin(governed), admin(governed)
    proposal = propose_policy(governed)
    url = f"/v1/policy/proposals/{proposal['version']}/approvals"
    with HttpClient(create_app(governed.runtime, run_worker=False)) as http:
        writes = watch.writes_begun
        forged = first.body(proposal) | {"signature": second.sign(proposal)}
        assert post(http, url, forged).status_code == 401
        assert watch.writes_begun == writes  # a bad signature takes no write lock at all
        assert post(http, url, first.body(proposal)).status_code == 200
        assert post(http, url, second.body(proposal)).json()["state"] == "applied"
    assert watch.seen == [
        (first.statement(proposal), 0, True),
        (first.statement(proposal), 0, True),
        (second.statement(proposal), 0, True),
    ]


def test_ceremony_decisions_are_verified_with_no_write_transaction_open(
    governed: Installation, watch: Watch
) -> None:
    first, second = admin(governed), admin(governed)
    proposal = propose_ceremony(governed)
    url = f"/v1/ceremonies/proposals/{proposal['proposal']}/approvals"
    with HttpClient(create_app(governed.runtime, run_worker=False)) as http:
        writes = watch.writes_begun
        forged = first.body(proposal) | {"signature": second.sign(proposal)}
        assert post(http, url, forged).status_code == 401
        assert watch.writes_begun == writes
        assert watch.seen == [(first.statement(proposal), 0, True)]
        watch.seen.clear()
        answer = post(http, url, first.body(proposal))
        assert answer.status_code == 200, answer.text
        # Then, under the lock, the stored approvals are verified again as they are counted.
        assert watch.seen[0] == (first.statement(proposal), 0, True)
    watch.seen.clear()
    args = ["ceremony", "approve", proposal["proposal"], "--approver", second.name]
    decided = ok_json(invoke([*args, "--signature", second.sign(proposal), "--json"], governed.env))
    assert decided["quorum"]["met"] is True
    assert watch.seen[0] == (second.statement(proposal), 0, True)


def meanwhile(
    monkeypatch: pytest.MonkeyPatch, module: Any, db: Database, change: Callable[[Session], None]
) -> None:
    """Make `change` in a write transaction of its own while `module` verifies a signature:
    possible only when the verification holds no lock (the write would wait for it)."""
    verify: Verifier = module.verify_device_signature

    def changing(public_key_hex: str, signature: str, statement: bytes) -> bool:
        monkeypatch.setattr(module, "verify_device_signature", verify)  # once
        with db.write() as session:
            change(session)
        return verify(public_key_hex, signature, statement)

    monkeypatch.setattr(module, "verify_device_signature", changing)


def test_a_change_during_the_verification_is_checked_again_under_the_lock(
    governed: Installation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite and PostgreSQL alike, a write made while a decision is verified lands first
    (under the old code it waited for the lock the verification held); the decision is then
    judged on what is true when it is recorded."""
    first, second = admin(governed), admin(governed)
    policy, ceremony = propose_policy(governed), propose_ceremony(governed)
    db = governed.runtime.db

    def first_is_disabled(session: Session) -> None:
        disable(session, name=first.name, actor="test")

    with HttpClient(create_app(governed.runtime, run_worker=False)) as http:
        meanwhile(monkeypatch, policy_approvals, db, first_is_disabled)
        url = f"/v1/policy/proposals/{policy['version']}/approvals"
        refused = post(http, url, first.body(policy))
        assert refused.status_code == 403, refused.text
        assert refused.json()["detail"] == "no enabled approver with a device key by that name"

        def second_rejects(session: Session) -> None:
            approver = approver_named(session, second.name)
            assert approver is not None
            assert approver.device_public_key is not None
            decision = ceremony_approvals.VerifiedDecision(
                int(ceremony["proposal"]),
                approver.id,
                "reject",
                second.statement(ceremony, "reject"),
                second.sign(ceremony, "reject"),
                approver.device_public_key,
            )
            ceremony_approvals.record_decision(session, decision)

        third = admin(governed)
        meanwhile(monkeypatch, ceremony_approvals, db, second_rejects)
        url = f"/v1/ceremonies/proposals/{ceremony['proposal']}/approvals"
        late = post(http, url, third.body(ceremony))
        assert late.status_code == 409, late.text
        assert late.json()["detail"].endswith("is rejected, not pending")
    with governed.runtime.db.read() as session:
        approvals = session.execute(
            select(PolicyApproval.id).where(PolicyApproval.version_id == int(policy["version"]))
        ).all()
        assert approvals == []
        decided = session.execute(
            select(CeremonyApproval.decision).where(
                CeremonyApproval.proposal_id == int(ceremony["proposal"])
            )
        ).scalars()
        assert list(decided) == ["reject"]
