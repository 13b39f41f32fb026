"""`custody worker --processes N`: signer processes and the background process under the same
supervisor as `custody serve`, woken by an API in another process, stopped as one tree."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from custody.app import create_app
from custody.store.models import Request
from tests.e2e.process import custody_env
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation
from tests.support.tree import running, start

pytestmark = pytest.mark.slow

POLL = 20.0  # far beyond SIGNED_WITHIN: a request signed in time was woken by the doorbell
SIGNED_WITHIN = 10.0
ROLES = ("signer-1", "signer-2", "background")
# Each signer's loop says it started once (and more lines later, when it warms up).
STARTED = re.compile(r"custody\.signing: signer worker \S+ started$", re.M)


def test_worker_processes_sign_and_stop_together(
    home: Installation, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = custody_env(
        home.env, CUSTODY_WORKER_POLL_SECONDS=str(POLL), CUSTODY_SHUTDOWN_TIMEOUT_SECONDS="10"
    )
    log = tmp_path_factory.mktemp("worker-tree") / "worker.log"
    tree = start(["worker", "--processes", "2"], env, log, roles=ROLES)
    try:
        # Listening on the doorbell once their loop runs.
        tree.wait_for(
            "both signers running",
            lambda: len(STARTED.findall(tree.output())) == 2,
        )
        children = tree.children()
        assert {tree.pid_of(role) for role in ROLES} <= children

        # The API of this test process rings the worker tree's doorbell (same CUSTODY_HOME).
        wallet = home.wallet()
        with TestClient(create_app(home.runtime, run_worker=False)) as http:
            created = Api(http.request, home.client()).create(withdrawal(wallet.name))
        assert created.status_code == 201, created.text
        _wait_signed(home, created.json()["id"], tree.output)

        tree.signal(signal.SIGTERM)
        assert tree.process.wait(timeout=20) == 0, tree.output()
        deadline = time.monotonic() + 5
        while any(running(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in children if running(pid)], tree.output()
    finally:
        tree.stop()


def _wait_signed(home: Installation, request_id: str, output: Callable[[], str]) -> None:
    deadline = time.monotonic() + SIGNED_WITHIN
    while True:
        with home.runtime.db.read() as session:
            row = session.get(Request, request_id)
            assert row is not None
            status = row.status
        if status == "signed":
            return
        assert status in {"approved", "signing"}, status
        if time.monotonic() > deadline:
            pytest.fail(f"{request_id} still {status}:\n{output()}")
        time.sleep(0.05)


def test_signers_and_background_as_services_of_their_own(
    home: Installation, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The split of deploy/: `--only signers` and `--only background`, each its own tree."""
    env = custody_env(
        home.env,
        CUSTODY_WORKER_POLL_SECONDS=str(POLL),
        CUSTODY_CHECKPOINT_INTERVAL_SECONDS="3600",  # only the final checkpoint, at the stop
    )
    logs = tmp_path_factory.mktemp("worker-split")
    signers = start(
        ["worker", "--only", "signers", "--processes", "1"],
        env,
        logs / "signers.log",
        roles=["signer-1"],
    )
    try:
        background = start(
            ["worker", "--only", "background"], env, logs / "background.log", roles=["background"]
        )
        try:
            assert set(signers.started()) == {"signer-1"}
            assert set(background.started()) == {"background"}
            signers.wait_for("the signer running", lambda: "signer worker" in signers.output())
            background.wait_for(
                "the background process running",
                lambda: "background process running" in background.output(),
            )
            wallet = home.wallet()
            with TestClient(create_app(home.runtime, run_worker=False)) as http:
                created = Api(http.request, home.client()).create(withdrawal(wallet.name))
            assert created.status_code == 201, created.text
            _wait_signed(home, created.json()["id"], signers.output)

            signers.signal(signal.SIGTERM)
            assert signers.process.wait(timeout=20) == 0, signers.output()
            background.signal(signal.SIGTERM)
            assert background.process.wait(timeout=20) == 0, background.output()
            assert "final checkpoint at size" in background.output()
        finally:
            background.stop()
    finally:
        signers.stop()
