"""Crash tests: a signer process killed mid-way (CUSTODY_FAILPOINTS) leaves its request `signing`
under a lease; once the lease runs out the next worker finishes it, exactly once.

Workers that crash run as `custody worker --once` processes (a failpoint ends the process); the
workers that finish or find nothing run the same command in this process (`invoke`). The
production run, whose failpoints must be ignored, stays a process: were they not, it would end
the test session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from fastapi.testclient import TestClient
from hexbytes import HexBytes
from sqlalchemy import update

from custody.app import create_app
from custody.store.models import Request
from tests.e2e.process import custody_env, ok_json, run_custody
from tests.support.api import DESTINATION, Api, withdrawal
from tests.support.cli import CliResult, invoke
from tests.support.installation import Installation, WalletInfo
from tests.support.lifecycle import assert_histories_hold

pytestmark = pytest.mark.slow

CRASH_EXIT = 86
SHORT_LEASE = "5"
HELD_LEASE = "120"


@pytest.fixture(scope="module")
def http(installation: Installation) -> Iterator[TestClient]:
    with TestClient(create_app(installation.runtime, run_worker=False)) as client:
        yield client


@pytest.fixture
def api(http: TestClient, installation: Installation) -> Api:
    installation.allow_all_policy()
    return Api(http.request, installation.client())


def _approved(api: Api, installation: Installation, amount: str = "4242") -> tuple[str, WalletInfo]:
    wallet = installation.wallet()
    created = api.create(withdrawal(wallet.name, amount=amount, nonce=3))
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "approved"
    return created.json()["id"], wallet


def _row(installation: Installation, request_id: str) -> Request:
    with installation.runtime.db.read() as session:
        row = session.get(Request, request_id)
        assert row is not None
        return row


def _entries_for(installation: Installation, request_id: str) -> list[dict[str, Any]]:
    return [e for e in installation.ledger_entries() if e["data"].get("request") == request_id]


def _worker_process(installation: Installation, **env: str) -> Any:
    return run_custody(["worker", "--once", "--json"], custody_env(installation.env, **env))


def _worker(installation: Installation) -> CliResult:
    return invoke(["worker", "--once", "--json"], installation.env)


def _wait_for_lease_to_end(installation: Installation, request_id: str) -> None:
    row = _row(installation, request_id)
    assert row.lease_until is not None
    deadline = time.monotonic() + 30
    while datetime.now(UTC) <= row.lease_until:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.05)


def _end_leases_now(installation: Installation, request_ids: list[str]) -> None:
    """As if the leases had run out: the signer compares `lease_until` with the time, so moving
    it is the same to the signer as waiting for it, without the wait."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    with installation.runtime.db.write() as session:
        session.execute(update(Request).where(Request.id.in_(request_ids)).values(lease_until=past))


def _assert_ledger_contiguous_and_verified(installation: Installation) -> None:
    indices = [e["index"] for e in installation.ledger_entries()]
    assert indices == list(range(len(indices)))
    # `worker --once` runs no checkpointer: sign the entries so that verify covers them all
    ok_json(invoke(["ledger", "checkpoint", "--json"], installation.env))
    verified = invoke(["ledger", "verify", "--json"], installation.env)
    report = ok_json(verified)
    assert report["ok"] is True
    assert report["size"] == len(indices)


def _check_finished_once(
    installation: Installation, api: Api, request_id: str, wallet: WalletInfo, first_worker: str
) -> None:
    row = _row(installation, request_id)
    assert row.status == "signed"
    assert row.signing_attempts == 2
    assert row.lease_until is None
    seen = api.get(request_id).json()
    assert seen["status"] == "signed"
    raw = seen["result"]["raw_transaction"]
    assert Account.recover_transaction(raw) == wallet.address
    fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    assert fields["value"] == 4242
    assert fields["nonce"] == 3
    assert HexBytes(fields["to"]) == HexBytes(DESTINATION)

    entries = _entries_for(installation, request_id)
    signing = [e for e in entries if e["kind"] == "request.signing"]
    signed = [e for e in entries if e["kind"] == "request.signed"]
    assert [e["data"]["attempt"] for e in signing] == [1, 2]
    assert signing[0]["data"]["reclaimed_from"] is None
    assert signing[1]["data"]["reclaimed_from"] == first_worker
    assert len(signed) == 1
    assert signed[0]["data"]["attempt"] == 2
    assert signed[0]["data"]["raw_transaction"] == raw
    assert signed[0]["data"]["digest"] == seen["payload"]["digest"]
    assert {e["data"]["digest"] for e in signing} == {seen["payload"]["digest"]}
    # approved -> signing (crashed) -> signing (re-claimed) -> signed, each step on the ledger
    assert [(e["data"]["from"], e["data"]["to"]) for e in signing + signed] == [
        ("approved", "signing"),
        ("signing", "signing"),
        ("signing", "signed"),
    ]
    assert_histories_hold(installation, [request_id])


def _crash_next(installation: Installation, failpoint: str, lease: str) -> None:
    """A worker process claims the oldest waiting request (only that one: a batch of one) and
    dies at `failpoint`."""
    crashed = _worker_process(
        installation,
        CUSTODY_FAILPOINTS=failpoint,
        CUSTODY_SIGNING_LEASE_SECONDS=lease,
        CUSTODY_SIGNING_BATCH_SIZE="1",
    )
    assert crashed.returncode == CRASH_EXIT, crashed.stderr


def _left_signing(installation: Installation, api: Api, request_id: str) -> str:
    """The request a crashed worker left: signing, no result; returns the worker's id."""
    row = _row(installation, request_id)
    assert row.status == "signing"
    assert row.result_raw is None
    assert row.result_tx_hash is None
    assert row.signing_attempts == 1
    assert row.claimed_by
    seen = api.get(request_id).json()
    assert seen["status"] == "signing"
    assert "result" not in seen
    kinds = [e["kind"] for e in _entries_for(installation, request_id)]
    assert kinds[-1] == "request.signing"
    assert "request.signed" not in kinds
    return row.claimed_by


def test_crashed_signers_are_finished_exactly_once_after_their_leases(
    api: Api, installation: Installation
) -> None:
    """One request crashes after the HSM signed it, another just before the result commits; the
    second crash happens while the first one's lease still holds, so it must leave it alone.

    Both requests are approved first, so that the second worker starts as soon as the first has
    died: the first lease has to outlast only the second worker's start."""
    first, first_wallet = _approved(api, installation)
    second, second_wallet = _approved(api, installation)
    # The first lease must outlast the start of the second worker, a new process: on a loaded
    # machine that can take several seconds, so it is long, and cut short below.
    _crash_next(installation, "after-hsm-sign", HELD_LEASE)
    held = _row(installation, first)
    assert held.status == "signing"
    assert held.lease_until is not None
    _crash_next(installation, "before-signed-commit", SHORT_LEASE)
    after_sign = (first, first_wallet, _left_signing(installation, api, first))
    before_commit = (second, second_wallet, _left_signing(installation, api, second))
    # The second worker looked for work once, when it claimed its request (lease_until is the
    # claim time plus its lease): the first lease must still have held then.
    claimed = _row(installation, second)
    assert claimed.lease_until is not None
    claimed_at = claimed.lease_until - timedelta(seconds=int(SHORT_LEASE))
    assert claimed_at < held.lease_until, "too slow to test a held lease"
    still = _row(installation, first)
    assert (still.claimed_by, still.lease_until, still.signing_attempts) == (
        held.claimed_by,
        held.lease_until,
        1,
    )

    _end_leases_now(installation, [first, second])
    _wait_for_lease_to_end(installation, after_sign[0])
    _wait_for_lease_to_end(installation, before_commit[0])
    finished = _worker(installation)
    assert finished.returncode == 0, finished.stderr

    for request_id, wallet, first_worker in (after_sign, before_commit):
        _check_finished_once(installation, api, request_id, wallet, first_worker)

    # A further worker finds nothing to do for them.
    again = _worker(installation)
    assert again.returncode == 0, again.stderr
    for request_id, _, _ in (after_sign, before_commit):
        assert [e["kind"] for e in _entries_for(installation, request_id)].count(
            "request.signed"
        ) == 1

    _assert_ledger_contiguous_and_verified(installation)


def test_worker_leaves_a_request_alone_while_anothers_lease_holds(
    api: Api, installation: Installation
) -> None:
    request_id, _ = _approved(api, installation)
    crashed = _worker_process(
        installation, CUSTODY_FAILPOINTS="after-hsm-sign", CUSTODY_SIGNING_LEASE_SECONDS="300"
    )
    assert crashed.returncode == CRASH_EXIT, crashed.stderr
    before = _row(installation, request_id)
    entries_before = _entries_for(installation, request_id)
    assert before.status == "signing"

    other = _worker(installation)
    assert other.returncode == 0, other.stderr

    after = _row(installation, request_id)
    assert after.status == "signing"
    assert after.claimed_by == before.claimed_by
    assert after.lease_until == before.lease_until
    assert after.signing_attempts == 1
    assert after.result_raw is None
    assert _entries_for(installation, request_id) == entries_before


def test_worker_once_signs_everything_waiting_even_after_a_recheck_stops_one(
    api: Api, installation: Installation
) -> None:
    """`custody worker --once` signs what is waiting: a request that the re-check stops (the policy
    tightened after it was approved) must not keep the worker from the requests behind it."""
    stopped_id, _ = _approved(api, installation)
    kept_id, kept_wallet = _approved(api, installation)
    installation.apply_policy(
        "version: 1\nrules:\n"
        f"  - {{id: only-kept, match: {{type: withdrawal, wallets: [{kept_wallet.name}]}}, "
        "action: allow}\n"
    )
    try:
        result = _worker(installation)
        assert result.returncode == 0, result.stderr
        stopped = api.get(stopped_id).json()
        kept = api.get(kept_id).json()
        assert stopped["status"] == "rejected"
        assert "result" not in stopped
        assert kept["status"] == "signed", json.dumps(kept)
        assert Account.recover_transaction(kept["result"]["raw_transaction"]) == kept_wallet.address
    finally:
        installation.allow_all_policy()


def test_failpoints_are_ignored_in_production(api: Api, installation: Installation) -> None:
    request_id, wallet = _approved(api, installation)
    result = _worker_process(
        installation,
        CUSTODY_ENVIRONMENT="production",
        CUSTODY_DATABASE_URL=installation.settings.resolved_database_url,
        CUSTODY_FAILPOINTS="after-hsm-sign,before-signed-commit",
    )
    assert result.returncode == 0, result.stderr
    seen = api.get(request_id).json()
    assert seen["status"] == "signed"
    assert Account.recover_transaction(seen["result"]["raw_transaction"]) == wallet.address


def test_worker_once_reports_how_many_requests_it_signed(
    api: Api, installation: Installation
) -> None:
    ids = [_approved(api, installation)[0] for _ in range(3)]
    before = len(installation.ledger_entries("request.signed"))
    result = _worker(installation)
    report = ok_json(result)
    signed_now = len(installation.ledger_entries("request.signed")) - before
    assert all(api.get(i).json()["status"] == "signed" for i in ids)
    assert signed_now >= 3
    assert report == {"signed": signed_now}


def test_failpoints_are_ignored_when_only_custody_toml_says_production(tmp_path: Path) -> None:
    """The environment variable is not the only way to say production (issue 10)."""
    home = tmp_path / "home"
    home.mkdir()
    pin = tmp_path / "pin"
    pin.write_text("0000\n")
    (home / "custody.toml").write_text(
        'environment = "production"\n'
        'hsm_module = "/nonexistent/libpkcs11.so"\n'
        'hsm_token = "prod"\n'
        'database_url = "postgresql://postgres@127.0.0.1:1/never-connected"\n'
        f'hsm_pin_file = "{pin}"\n'
    )
    script = (
        "from custody.runtime import Runtime\n"
        "from custody.settings import load_settings\n"
        "from custody.signing import failpoints\n"
        "from custody.signing.worker import SignerWorker\n"
        "settings = load_settings()\n"
        "assert settings.environment.value == 'production'\n"
        "SignerWorker(Runtime(settings))\n"
        "failpoints.hit('after-hsm-sign')\n"
        "print('still running')\n"
    )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_") and k != "SOFTHSM2_CONF"
    }
    env.update(CUSTODY_HOME=str(home), CUSTODY_FAILPOINTS="after-hsm-sign")
    ran = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "still running"
