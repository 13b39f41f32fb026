"""`custody serve` as a tree of processes, with one server shared by the tests of this module:
each part runs in a process of its own, requests are signed across them, and a child killed
with SIGKILL is started again while nothing acknowledged is lost.

Signers poll every POLL seconds, longer than any bound here: a request signed in time was woken
through the doorbell (custody.wakeup) by the API process that accepted it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from sqlalchemy import select

from custody.store.models import LedgerEntry, Request
from tests.e2e.process import custody_env
from tests.support.api import Api, withdrawal
from tests.support.cli import invoke, ok_json
from tests.support.installation import Installation
from tests.support.lifecycle import assert_histories_hold
from tests.support.tree import Tree, children_of, free_port, start

pytestmark = pytest.mark.slow

POLL = 20.0
LEASE = 5  # the shortest lease the settings allow
SIGNED_WITHIN = 10.0  # generous, and still half of POLL
ROLES = ("api-1", "api-2", "signer-1", "background")


@pytest.fixture(scope="module")
def server(home: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    port = free_port()
    env = custody_env(
        home.env,
        CUSTODY_WORKER_POLL_SECONDS=str(POLL),
        CUSTODY_SIGNING_LEASE_SECONDS=str(LEASE),
        CUSTODY_CHECKPOINT_INTERVAL_SECONDS="1",
        CUSTODY_LONG_POLL_RECHECK_SECONDS=str(POLL),  # long polls answer only when woken
    )
    log = tmp_path_factory.mktemp("serve-tree") / "serve.log"
    argv = ["serve", "--workers", "2", "--host", "127.0.0.1", "--port", str(port)]
    tree = start(argv, env, log, roles=ROLES, port=port)
    try:
        yield tree
    finally:
        tree.stop()


@pytest.fixture
def http(server: Tree) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def test_each_part_runs_in_a_process_of_its_own(server: Tree) -> None:
    pids = {role: server.pid_of(role) for role in ROLES}
    assert len(set(pids.values())) == len(ROLES)
    assert set(pids.values()) <= children_of(server.process.pid)
    # Both API processes accept on the one socket the supervisor bound and holds.
    listening = _listening_inode(server.port or 0)
    for pid in (server.process.pid, pids["api-1"], pids["api-2"]):
        assert listening in _socket_inodes(pid), pid
    # Every process logs, and says which one it is.
    assert "[signer-1] custody.signing: signer worker" in server.output()
    # The start-up lines say how many processes run, and why.
    assert "2 API processes (--workers/--signers), 1 signer process (sized to " in server.output()


def test_withdrawal_is_signed_across_the_processes(
    server: Tree, home: Installation, http: httpx.Client
) -> None:
    wallet = home.wallet()
    api = Api(http.request, home.client())
    created = api.create(withdrawal(wallet.name, nonce=0))
    assert created.status_code == 201, created.text
    signed = _wait_signed(api, created.json()["id"], server)
    assert Account.recover_transaction(signed["result"]["raw_transaction"]) == wallet.address


def test_requests_made_while_the_signer_signs_are_signed_through_the_doorbell(
    server: Tree, home: Installation, http: httpx.Client
) -> None:
    """The signer does not look again after a batch that emptied the queue: requests accepted
    while it signs are signed because their commit rang it, not by its next poll (POLL)."""
    wallet = home.wallet()
    api = Api(http.request, home.client())
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda n: api.create(withdrawal(wallet.name, nonce=n)), range(12)))
    assert all(answer.status_code == 201 for answer in answers), [a.text for a in answers]
    for answer in answers:
        signed = _wait_signed(api, answer.json()["id"], server)
        assert Account.recover_transaction(signed["result"]["raw_transaction"]) == wallet.address


def test_a_long_poll_hears_of_a_signature_made_in_another_process(
    server: Tree, home: Installation, http: httpx.Client
) -> None:
    """A poll waits on a request that a freeze holds; the freeze is lifted from the CLI, which
    wakes the signer process; the signer's commit rings every API process's watcher socket, and
    the poll, in whichever API process took it, answers with the result long before it would
    have looked again on its own (POLL) or given up (its `wait`)."""
    wallet = home.wallet()
    api = Api(http.request, home.client())
    frozen = invoke(["freeze", "--wallet", wallet.name, "--reason", "long poll test"], home.env)
    assert frozen.returncode == 0, frozen.stderr
    created = api.create(withdrawal(wallet.name, nonce=1))
    assert created.status_code == 201, created.text
    answers: list[httpx.Response] = []
    with ThreadPoolExecutor(1) as pool:
        polled = pool.submit(
            lambda: api.call("GET", f"/v1/requests/{created.json()['id']}?wait={POLL}")
        )
        time.sleep(1)  # the poll reads `approved` and waits (were it later, it reads `signed`)
        lifted = invoke(["unfreeze", "--wallet", wallet.name, "--reason", "done"], home.env)
        assert lifted.returncode == 0, lifted.stderr
        unfrozen = time.monotonic()
        answers.append(polled.result(timeout=2 * POLL))
        answered_after = time.monotonic() - unfrozen
    assert answers[0].status_code == 200, answers[0].text
    assert answers[0].json()["status"] == "signed", f"{answers[0].json()}\n{server.output()}"
    assert answered_after < SIGNED_WITHIN, "the poll was not woken: it ran to its end"


def test_a_stalled_signer_does_not_stall_the_api(
    server: Tree, home: Installation, http: httpx.Client
) -> None:
    """What a hung HSM call does to the signer (PyKCS11 holds the GIL), SIGSTOP does to all of
    its process: the API processes answer on."""
    api = Api(http.request, home.client())
    signer = server.pid_of("signer-1")
    os.kill(signer, signal.SIGSTOP)
    try:
        for path in ("/healthz", "/readyz"):
            answer = http.get(path, timeout=10)
            assert answer.status_code == 200, (path, answer.text)
        checkpoint = api.call("GET", "/v1/ledger/checkpoint")
        assert checkpoint.status_code == 200, checkpoint.text
    finally:
        os.kill(signer, signal.SIGCONT)
    assert server.pid_of("signer-1") == signer


def test_a_killed_signer_is_restarted_and_every_request_is_signed_once(
    server: Tree, home: Installation, http: httpx.Client
) -> None:
    wallet = home.wallet()
    api = Api(http.request, home.client())
    victim = server.pid_of("signer-1")
    created: list[str] = []
    done = threading.Event()

    def submit(first_nonce: int) -> None:
        for nonce in range(first_nonce, first_nonce + 1000, 3):
            if done.is_set():
                return
            answer = api.create(withdrawal(wallet.name, nonce=nonce))
            assert answer.status_code == 201, answer.text
            created.append(answer.json()["id"])

    with ThreadPoolExecutor(3) as pool:
        submitters = [pool.submit(submit, n) for n in range(3)]
        try:
            held = _kill_while_signing(home, victim)
        finally:
            done.set()
        for submitter in submitters:
            submitter.result()

    server.wait_restarted("signer-1", victim)
    # The restarted signer takes the held requests once their lease has run out: the next
    # request (its doorbell) wakes it after that.
    _wait_until_leases_end(home, held)
    last = api.create(withdrawal(wallet.name, nonce=5000))
    assert last.status_code == 201, last.text
    created.append(last.json()["id"])

    for request_id in created:
        _wait_signed(api, request_id, server)
    signed_entries = _entries(home, "request.signed", created)
    assert sorted(e["data"]["request"] for e in signed_entries) == sorted(created)
    reclaimed = [
        e["data"]["request"]
        for e in _entries(home, "request.signing", held)
        if e["data"]["reclaimed_from"] is not None
    ]
    assert sorted(reclaimed) == sorted(held)
    assert_histories_hold(home, created)
    ok_json(invoke(["ledger", "checkpoint", "--json"], home.env))
    assert ok_json(invoke(["ledger", "verify", "--json"], home.env))["ok"] is True


def test_killed_api_processes_are_restarted_and_no_connection_is_refused(
    server: Tree, http: httpx.Client
) -> None:
    before = {role: server.pid_of(role) for role in ("api-1", "api-2")}
    for pid in before.values():
        os.kill(pid, signal.SIGKILL)
    # No API process is left: the call waits in the backlog of the socket the supervisor
    # still holds, and is answered once the restarted processes accept.
    answer = http.get("/readyz", timeout=120)
    assert answer.status_code == 200, answer.text
    for role, pid in before.items():
        assert server.wait_restarted(role, pid) != pid


def test_a_killed_background_process_is_restarted_and_checkpoints_resume(
    server: Tree, home: Installation, http: httpx.Client
) -> None:
    victim = server.pid_of("background")
    os.kill(victim, signal.SIGKILL)
    assert server.wait_restarted("background", victim) != victim
    wallet = home.wallet()
    api = Api(http.request, home.client())
    created = api.create(withdrawal(wallet.name, nonce=7000))
    assert created.status_code == 201, created.text
    _wait_signed(api, created.json()["id"], server)
    with home.runtime.db.read() as session:
        size = len(session.execute(select(LedgerEntry.index)).scalars().all())

    def covered() -> bool:
        note = api.call("GET", "/v1/ledger/checkpoint")
        return note.status_code == 200 and int(note.text.splitlines()[1]) >= size

    server.wait_for("a checkpoint over the new entries, signed by the restarted process", covered)


# -- helpers ---------------------------------------------------------------------------------


def _wait_signed(api: Api, request_id: str, server: Tree) -> dict[str, Any]:
    deadline = time.monotonic() + SIGNED_WITHIN
    while True:
        seen = api.get(request_id)
        assert seen.status_code == 200, seen.text
        body: dict[str, Any] = seen.json()
        if body["status"] == "signed":
            return body
        assert body["status"] in {"approved", "signing"}, body
        if time.monotonic() > deadline:
            pytest.fail(f"{request_id} still {body['status']}:\n{server.output()}")
        time.sleep(0.05)


def _held_by(home: Installation, pid: int) -> list[str]:
    with home.runtime.db.read() as session:
        return list(
            session.execute(
                select(Request.id).where(
                    Request.status == "signing", Request.claimed_by.like(f"%:{pid}:%")
                )
            ).scalars()
        )


def _kill_while_signing(home: Installation, pid: int) -> list[str]:
    """SIGKILL the signer between its claim and its result, so that it leaves requests
    `signing`: stopped (SIGSTOP) when it is seen holding some, killed if it still does."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _held_by(home, pid):
            os.kill(pid, signal.SIGSTOP)
            held = _held_by(home, pid)
            if held:
                os.kill(pid, signal.SIGKILL)
                return held
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.001)
    pytest.fail("the signer was never seen holding a claim")


def _wait_until_leases_end(home: Installation, request_ids: list[str]) -> None:
    with home.runtime.db.read() as session:
        leases = session.execute(
            select(Request.lease_until).where(Request.id.in_(request_ids))
        ).scalars()
        last = max(lease for lease in leases if lease is not None)
    while datetime.now(UTC) <= last:
        time.sleep(0.1)


def _entries(home: Installation, kind: str, request_ids: list[str]) -> list[dict[str, Any]]:
    import json

    ids = set(request_ids)
    with home.runtime.db.read() as session:
        rows = session.execute(select(LedgerEntry.entry).where(LedgerEntry.kind == kind))
        entries = [json.loads(entry) for entry in rows.scalars()]
    return [e for e in entries if e["data"]["request"] in ids]


def _listening_inode(port: int) -> str:
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # 0A: LISTEN
            return fields[9]
    raise AssertionError(f"nothing listens on port {port}")


def _socket_inodes(pid: int) -> set[str]:
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[len("socket:[") : -1])
    return found
