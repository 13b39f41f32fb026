"""Freezes stop a whole installation: every test here gets one of its own.

`own` is an installation per backend (SQLite and PostgreSQL) for what involves the signer's claim
query; `home` is SQLite only, for the API, the CLI, governance and breakers.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import func, select

from custody.app import create_app
from custody.approvals.approvers import add_approver
from custody.signing.worker import SignerWorker
from custody.store.models import Freeze, Request
from tests.support.api import Api, withdrawal
from tests.support.cli import CliResult, invoke, ok_json
from tests.support.installation import (
    Installation,
    InstallationFactory,
    allow_all_installation,
)


@pytest.fixture
def own(fresh_installation: Installation) -> Installation:
    fresh_installation.allow_all_policy()
    return fresh_installation


@pytest.fixture
def home(installations: InstallationFactory) -> Iterator[Installation]:
    with allow_all_installation(installations) as inst:
        yield inst


@pytest.fixture
def http(home: Installation) -> Iterator[HttpClient]:
    with HttpClient(create_app(home.runtime, run_worker=False)) as client:
        yield client


def worker(inst: Installation) -> SignerWorker:
    return SignerWorker(inst.runtime, worker_id=f"w-{secrets.token_hex(3)}")


def cli(inst: Installation, *args: str) -> CliResult:
    return invoke(list(args), inst.env)


def cli_json(inst: Installation, *args: str) -> Any:
    return ok_json(cli(inst, *args, "--json"))


def submit(api: Api, wallet: str, nonce: int = 0, **body: Any) -> dict[str, Any]:
    answer = api.create(withdrawal(wallet, nonce=nonce, **body))
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def statuses(inst: Installation, ids: list[str]) -> list[str]:
    with inst.runtime.db.read() as session:
        found = dict(
            session.execute(select(Request.id, Request.status).where(Request.id.in_(ids))).all()
        )
    return [found[i] for i in ids]


def active_freezes(inst: Installation) -> list[Freeze]:
    with inst.runtime.db.read() as session:
        query = select(Freeze).where(Freeze.lifted_at.is_(None)).order_by(Freeze.id)
        return list(session.execute(query).scalars())


def freeze_rows(inst: Installation) -> int:
    with inst.runtime.db.read() as session:
        return int(session.execute(select(func.count()).select_from(Freeze)).scalar_one())


@dataclass(frozen=True)
class Admin:
    """A governance approver's phone: it signs unfreeze statements (written from the docs)."""

    name: str
    key: Ed25519PrivateKey

    def body(
        self,
        freeze: int,
        unfreeze: int,
        decision: str = "approve",
        *,
        key: Ed25519PrivateKey | None,
    ) -> bytes:
        statement = rfc8785.dumps(
            {
                "type": "custody.unfreeze.v1",
                "freeze": str(freeze),
                "unfreeze": str(unfreeze),
                "decision": decision,
                "approver": self.name,
            }
        )
        signature = (key or self.key).sign(bytes(statement))
        return json.dumps(
            {
                "approver": self.name,
                "decision": decision,
                "signature": base64.b64encode(signature).decode(),
            }
        ).encode()

    def decide(
        self,
        http: HttpClient,
        freeze: int,
        unfreeze: int,
        decision: str = "approve",
        *,
        key: Ed25519PrivateKey | None = None,
    ) -> httpx.Response:
        return http.post(
            f"/v1/freezes/{freeze}/approvals",
            content=self.body(freeze, unfreeze, decision, key=key),
            headers={"Content-Type": "application/json"},
        )


def admin(inst: Installation, group: str = "admins") -> Admin:
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    name = f"adm-{secrets.token_hex(3)}"
    with inst.runtime.db.write() as session:
        add_approver(session, name=name, groups=[group], device_key_pem=pem, actor="test")
    return Admin(name, key)
