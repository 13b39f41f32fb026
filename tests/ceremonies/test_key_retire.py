"""`custody keys retire`: the wallets stop signing, the key pair leaves the token, the ledger
records it; and every refusal changes nothing (on the session SoftHSM token, in-process)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import PyKCS11
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient as HttpClient

from custody.app import create_app
from custody.approvals.approvers import add_approver
from custody.hsm import Backup, DevToken
from custody.hsm.errors import KeyNotFound
from custody.hsm.pkcs11.library import library
from custody.keys import repository as key_repo
from custody.keys import service as key_service
from custody.signing.worker import SignerWorker
from custody.store.models import Request
from tests.approvals.conftest import Device
from tests.support.api import Api, withdrawal
from tests.support.cli import CliResult, invoke, ok_json
from tests.support.installation import (
    Installation,
    InstallationFactory,
    WalletInfo,
    allow_all_installation,
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def home(
    installations: InstallationFactory, request: pytest.FixtureRequest
) -> Iterator[Installation]:
    if request.param == "postgres":
        request.getfixturevalue("pg_server")  # skips when no PostgreSQL answers
    with allow_all_installation(installations, request.param) as inst:
        yield inst


@pytest.fixture
def http(home: Installation) -> Iterator[HttpClient]:
    with HttpClient(create_app(home.runtime, run_worker=False)) as client:
        yield client


def cli(home: Installation, *args: str, stdin: str | None = None) -> CliResult:
    return invoke(list(args), home.env, stdin=stdin)


def backed_up_wallet(home: Installation) -> WalletInfo:
    """A backup-able key with a wallet, recorded as held by a backup (as `ceremony backup`
    records it; making a real one needs the SO, which this process cannot be)."""
    wallet = home.wallet(backup=Backup.TRUSTED_WRAP)
    with home.runtime.db.write() as session:
        key = key_repo.key_by_label(session, wallet.key_label)
        key_service.record_backup(
            session, key, manifest_sha256=secrets.token_hex(32), ledger_index=1
        )
    return wallet


def private_objects(token: DevToken, label: str) -> int:
    """Key objects labelled `label` on the token, seen through a session of its own."""
    lib = library(token.module_path)
    with lib.lock:
        slot = next(
            s
            for s in lib.pykcs11.getSlotList(tokenPresent=True)
            if lib.pykcs11.getTokenInfo(s).label.rstrip() == token.label
        )
        session = lib.pykcs11.openSession(slot, PyKCS11.CKF_RW_SESSION)
        try:
            return len(session.findObjects([(PyKCS11.CKA_LABEL, label)]))
        finally:
            session.closeSession()


def submit(http: HttpClient, home: Installation, wallet: str, nonce: int = 0) -> Any:
    return Api(http.request, home.client()).create(withdrawal(wallet, nonce=nonce))


def test_a_retired_key_is_gone_from_the_token_and_its_wallet_signs_nothing(
    http: HttpClient, home: Installation, hsm_dev_token: DevToken
) -> None:
    wallet, other = backed_up_wallet(home), home.wallet()
    first = submit(http, home, wallet.name)
    assert first.status_code == 201, first.text
    assert SignerWorker(home.runtime, worker_id="w-retire").drain() == 1  # it signed before
    assert private_objects(hsm_dev_token, wallet.key_label) == 2  # both halves

    done = ok_json(cli(home, "keys", "retire", wallet.key_label, "--yes", "--json"))

    assert done["destroyed"] is True
    assert done["wallets"] == [
        {"name": wallet.name, "chain": "ethereum", "address": wallet.address}
    ]
    assert private_objects(hsm_dev_token, wallet.key_label) == 0
    with pytest.raises(KeyNotFound):
        home.runtime.token().get_key(wallet.key_label)
    refused = submit(http, home, wallet.name, nonce=1)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert "signs nothing more" in refused.json()["detail"]
    assert "retired" in refused.json()["detail"]
    (entry,) = home.ledger_entries("key.retired")
    assert entry["index"] == done["ledger_index"]
    assert entry["actor"].startswith("operator:")
    data = entry["data"]
    assert (data["label"], data["public_key"]) == (wallet.key_label, done["public_key"])
    assert data["wallets"] == done["wallets"]
    listed = {k["label"]: k for k in ok_json(cli(home, "keys", "list", "--json"))}
    assert listed[wallet.key_label]["retired_at"] is not None
    assert listed[wallet.key_label]["backup_status"].startswith("retired ")
    assert "retired" in cli(home, "keys", "list").stdout
    # The retirement was sealed as it committed: every other wallet signs on.
    assert submit(http, home, other.name).status_code == 201
    assert SignerWorker(home.runtime, worker_id="w-after").drain() == 1
    verified = cli(home, "ledger", "verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    again = cli(home, "keys", "retire", wallet.key_label, "--yes")
    assert again.returncode != 0
    assert "retired at" in again.stderr
    made = cli(
        home, "wallets", "create", "w-again", "--chain", "ethereum", "--key", wallet.key_label
    )
    assert made.returncode != 0
    assert "retired" in made.stderr


def test_retiring_asks_to_type_the_label(home: Installation, hsm_dev_token: DevToken) -> None:
    wallet = backed_up_wallet(home)
    before = home.counts()
    piped = cli(home, "keys", "retire", wallet.key_label, stdin=wallet.key_label + "\n")
    assert piped.returncode != 0
    assert "confirm on a terminal, or pass --yes" in piped.stderr
    assert home.counts() == before
    assert private_objects(hsm_dev_token, wallet.key_label) == 2


def test_refusals_change_nothing(
    http: HttpClient, home: Installation, hsm_dev_token: DevToken
) -> None:
    unbacked = home.wallet(backup=Backup.TRUSTED_WRAP)
    busy = backed_up_wallet(home)
    assert submit(http, home, busy.name).status_code == 201  # approved, not signed yet
    before = home.counts()

    no_backup = cli(home, "keys", "retire", unbacked.key_label, "--yes")
    assert no_backup.returncode != 0
    assert "no backup holds key" in no_backup.stderr
    assert "custody ceremony backup" in no_backup.stderr
    assert "--force-no-backup" in no_backup.stderr
    live = cli(home, "keys", "retire", busy.key_label, "--yes")
    assert live.returncode != 0
    assert "1 request(s) approved or being signed" in live.stderr
    service = cli(home, "keys", "retire", home.settings.ledger_key_label, "--yes")
    assert service.returncode != 0
    assert "service key" in service.stderr
    unknown = cli(home, "keys", "retire", "no-such-key", "--yes")
    assert unknown.returncode != 0
    for result in (no_backup, live, service, unknown):
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert home.counts() == before
    for label in (unbacked.key_label, busy.key_label):
        assert private_objects(hsm_dev_token, label) == 2

    # Forced, a key no backup holds is retired (its wallets held nothing, the operator says).
    forced = ok_json(
        cli(home, "keys", "retire", unbacked.key_label, "--yes", "--force-no-backup", "--json")
    )
    assert forced["destroyed"] is True
    (entry,) = home.ledger_entries("key.retired")
    assert entry["data"]["last_backup"] is None


def test_a_request_approved_after_the_retirement_fails_at_the_signer(
    http: HttpClient, home: Installation
) -> None:
    wallet = backed_up_wallet(home)
    home.apply_policy(
        "version: 1\nrules:\n"
        f"  - {{id: one, match: {{type: withdrawal, wallets: [{wallet.name}]}}, "
        "action: {require_approvals: {count: 1, group: treasury}}}\n"
    )
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with home.runtime.db.write() as session:
        add_approver(session, name="tre", groups=["treasury"], device_key_pem=pem, actor="test")
    created = submit(http, home, wallet.name).json()
    assert created["status"] == "pending_approval"  # waiting is no reason to keep the key

    ok_json(cli(home, "keys", "retire", wallet.key_label, "--yes", "--json"))
    approval = http.post(
        f"/v1/requests/{created['id']}/approvals",
        content=Device("tre", key).body(created["id"], created["payload"]["digest"]),
        headers={"Content-Type": "application/json"},
    )
    assert approval.status_code == 200, approval.text
    assert approval.json()["status"] == "approved"

    assert SignerWorker(home.runtime, worker_id="w-retired").drain() == 0
    (failed,) = [
        e for e in home.ledger_entries("request.failed") if e["data"]["request"] == created["id"]
    ]
    assert "was retired" in failed["data"]["reason"]
    with home.runtime.db.read() as session:
        assert session.get(Request, created["id"]).status == "failed"  # type: ignore[union-attr]
