"""`/metrics` over real HTTP: the `custody_*` metrics read from the database at scrape time
(custody.metrics), and a scrape that stays bounded when the database does not answer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.app import create_app
from custody.approvals.approvers import add_approver
from custody.freezes import breakers
from custody.freezes import repository as freeze_rows
from custody.freezes import service as freezes
from custody.hsmhealth import holds
from custody.ledger.checkpoints import make_checkpoint, runtime_identity
from custody.metrics import repository
from custody.metrics.collector import SCRAPE_WAIT_SECONDS
from custody.runtime import Runtime
from custody.signing.worker import SignerWorker
from custody.webhooks.dispatcher import dispatch_all
from custody.webhooks.service import log_rows as webhook_log
from custody.webhooks.service import set_client_webhook
from tests.approvals.conftest import Device
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, InstallationFactory, allow_all_installation
from tests.support.metrics import names, scrape, value
from tests.support.server import serving


@pytest.fixture
def served(fresh_installation: Installation) -> Iterator[tuple[Installation, str]]:
    fresh_installation.allow_all_policy()
    app = create_app(fresh_installation.runtime, run_worker=False)
    with serving(lambda _port: app) as port:
        yield fresh_installation, f"http://127.0.0.1:{port}"


def test_a_signed_withdrawal_a_freeze_and_a_login_hold_show_in_the_metrics(
    served: tuple[Installation, str],
) -> None:
    inst, base_url = served
    wallet = inst.wallet()
    with httpx.Client(base_url=base_url) as http:
        api = Api(http.request, inst.client())
        created = api.create(withdrawal(wallet.name, nonce=0))
        assert created.status_code == 201, created.text
    assert SignerWorker(inst.runtime, worker_id="metrics-test").drain() == 1
    with inst.runtime.db.write() as session:
        freezes.freeze(
            session, wallet_id=None, reason="metrics test", actor="test", source="operator"
        )
        holds.place(
            session, inst.settings.main_token_label, reason="PIN refused", held_by="metrics-test"
        )

    samples, _ = scrape(base_url)

    assert value(samples, "custody_metrics_database_up") == 1
    assert value(samples, "custody_requests", type="withdrawal", status="signed") == 1
    assert value(samples, "custody_policy_decisions", decision="allow", rule="allow-all") == 1
    assert value(samples, "custody_ledger_entries") == len(inst.ledger_entries())
    unsigned = value(samples, "custody_ledger_unsigned_entries")
    assert 0 <= unsigned <= value(samples, "custody_ledger_entries")
    assert value(samples, "custody_freezes_active", scope="installation", source="operator") == 1
    assert value(samples, "custody_freezes_active", scope="wallet", source="operator") == 0
    assert value(samples, "custody_webhook_backlog") >= 0
    token = inst.settings.main_token_label
    assert value(samples, "custody_login_hold", token=token) == 1
    assert value(samples, "custody_hsm_up", token=token) == 0
    assert value(samples, "custody_signed_last_hour") == 1
    p50 = value(samples, "custody_signing_latency_seconds", quantile="0.5")
    assert 0 <= p50 <= value(samples, "custody_signing_latency_seconds", quantile="0.99") < 600
    # the process's own metrics are still there
    assert "process_cpu_seconds_total" in names(samples) or "python_info" in names(samples)


def test_a_tripped_breaker_shows_until_its_freeze_is_lifted(
    served: tuple[Installation, str],
) -> None:
    inst, base_url = served

    def breakers_active() -> float:
        samples = scrape(base_url)[0]
        return value(samples, "custody_freezes_active", scope="installation", source="breaker")

    with inst.runtime.db.write() as session:
        row = freezes.freeze(
            session,
            wallet_id=None,
            reason="too many denials",
            actor="breaker",
            source=breakers.source_of("denials"),
        )
        freeze_id = row.id
    assert breakers_active() == 1
    with inst.runtime.db.write() as session:
        found = freeze_rows.by_id(session, freeze_id)
        assert found is not None
        freezes.lift(session, found, by="test", reason="looked into")
    assert breakers_active() == 0


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_database_leaves_the_domain_metrics_out(
    installations: InstallationFactory,
) -> None:
    with allow_all_installation(installations) as inst:
        url = f"postgresql://custody@127.0.0.1:{_closed_port()}/custody"
        runtime = Runtime(inst.settings.model_copy(update={"database_url": url}))
        try:
            app = create_app(runtime, run_worker=False)
            with serving(lambda _port: app) as port:
                samples, took = scrape(f"http://127.0.0.1:{port}")
        finally:
            runtime.close()
    assert value(samples, "custody_metrics_database_up") == 0
    assert not {n for n in names(samples) if n.startswith("custody_")} - {
        "custody_metrics_database_up"
    }
    assert took < SCRAPE_WAIT_SECONDS + 3


def test_a_database_that_does_not_answer_costs_a_scrape_its_wait_only(
    installations: InstallationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    counting = repository.requests_by_type_and_status

    def hanging(session: object) -> object:
        release.wait(30)  # as a server that stopped answering mid-query
        return counting(session)  # type: ignore[arg-type]

    monkeypatch.setattr(repository, "requests_by_type_and_status", hanging)
    with allow_all_installation(installations) as inst:
        app = create_app(inst.runtime, run_worker=False)
        try:
            with serving(lambda _port: app) as port:
                base_url = f"http://127.0.0.1:{port}"
                first, took_first = scrape(base_url)
                second, took_second = scrape(base_url)  # joins the hung read, starts none
                release.set()
                time.sleep(0.2)
                monkeypatch.undo()
                after, _ = scrape(base_url)
        finally:
            release.set()
    for samples, took in ((first, took_first), (second, took_second)):
        assert value(samples, "custody_metrics_database_up") == 0
        assert ("custody_ledger_entries", frozenset()) not in samples
        assert took < SCRAPE_WAIT_SECONDS + 2
    assert value(after, "custody_metrics_database_up") == 1


def test_checkpoints_webhook_backlog_and_a_default_deny(
    served: tuple[Installation, str],
) -> None:
    inst, base_url = served
    rt = inst.runtime
    wallet = inst.wallet()
    client = inst.client()
    with rt.db.write() as session:
        # nothing listens there: the deliveries stay pending
        set_client_webhook(session, name=client.name, url="http://127.0.0.1:9/hook", actor="t")
    inst.apply_policy(
        "version: 1\nrules:\n"
        "  - {id: too-big, match: {type: withdrawal, assets: [ETH], amount_gt: '10'},"
        " action: deny}\n"
        "  - {id: mid, match: {type: withdrawal, assets: [ETH], amount_gt: '5'}, action: allow}\n"
    )
    with httpx.Client(base_url=base_url) as http:
        api = Api(http.request, client)
        for amount, nonce in (("3", 0), ("11", 1)):  # no rule matches; too-big matches
            denied = api.create(withdrawal(wallet.name, amount=amount, nonce=nonce))
            assert denied.status_code == 201, denied.text
            assert denied.json()["policy"]["decision"] == "deny"

    before = scrape(base_url)[0]
    assert value(before, "custody_policy_decisions", decision="deny", rule="(none)") == 1
    assert value(before, "custody_policy_decisions", decision="deny", rule="too-big") == 1
    assert value(before, "custody_requests", type="withdrawal", status="rejected") == 2
    assert value(before, "custody_ledger_unsigned_entries") > 0

    dispatch_all(rt.db)
    made = make_checkpoint(rt.db, rt.token(), runtime_identity(rt), on_fork=None)
    assert made is not None
    with rt.db.read() as session:
        pending = len(webhook_log(session, status="pending"))
    assert pending >= 1

    after = scrape(base_url)[0]
    assert value(after, "custody_webhook_backlog") == pending
    assert value(after, "custody_webhook_failed_deliveries") == 0
    assert value(after, "custody_ledger_entries") == made.tree_size
    assert value(after, "custody_ledger_unsigned_entries") == 0
    assert 0 <= value(after, "custody_checkpoint_age_seconds") < 60


ONE_APPROVAL = """
version: 1
rules:
  - id: one-treasury
    match: {type: withdrawal}
    action: {require_approvals: {count: 1, group: treasury}}
"""


def test_a_met_quorum_shows_in_the_approval_wait(served: tuple[Installation, str]) -> None:
    inst, base_url = served
    wallet = inst.wallet()
    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with inst.runtime.db.write() as session:
        add_approver(session, name="ap-metrics", groups=["treasury"], device_key_pem=pem, actor="t")
    device = Device("ap-metrics", key)
    inst.apply_policy(ONE_APPROVAL)
    with httpx.Client(base_url=base_url) as http:
        api = Api(http.request, inst.client())
        created = api.create(withdrawal(wallet.name, nonce=0)).json()
        assert created["status"] == "pending_approval", created
        waiting = scrape(base_url)[0]
        assert value(waiting, "custody_approved_last_hour") == 0
        assert ("custody_approval_wait_seconds", frozenset({("quantile", "0.5")})) not in waiting

        approved = http.post(
            f"/v1/requests/{created['id']}/approvals",
            content=device.body(created["id"], created["payload"]["digest"]),
            headers={"Content-Type": "application/json"},
        )
        assert approved.status_code in (200, 201), approved.text
        assert api.get(created["id"]).json()["status"] == "approved"

    samples = scrape(base_url)[0]
    assert value(samples, "custody_approved_last_hour") == 1
    wait = value(samples, "custody_approval_wait_seconds", quantile="0.5")
    assert 0 <= wait == value(samples, "custody_approval_wait_seconds", quantile="0.99") < 600
    rule = {"decision": "require_approvals", "rule": "one-treasury"}
    assert value(samples, "custody_policy_decisions", **rule) == 1
