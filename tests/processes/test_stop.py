"""Stopping the tree: SIGTERM stops every process within the bound and signs a final checkpoint;
a supervisor killed with SIGKILL leaves no child running. Each test starts its own server."""

from __future__ import annotations

import signal
import time

import httpx
import pytest
from sqlalchemy import func, select

from custody.store.models import LedgerCheckpoint, LedgerEntry
from tests.e2e.process import custody_env
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation
from tests.support.tree import Tree, free_port, running, start

pytestmark = pytest.mark.slow

SHUTDOWN_TIMEOUT = 10
ROLES = ("api-1", "signer-1", "background")


def _serve(home: Installation, tmp_path_factory: pytest.TempPathFactory, **env: str) -> Tree:
    port = free_port()
    log = tmp_path_factory.mktemp("serve-stop") / "serve.log"
    argv = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    full_env = custody_env(home.env, CUSTODY_SHUTDOWN_TIMEOUT_SECONDS=str(SHUTDOWN_TIMEOUT), **env)
    return start(argv, full_env, log, roles=ROLES, port=port)


def _sizes(home: Installation) -> tuple[int, int]:
    """(entries in the ledger, size of the latest signed checkpoint)"""
    with home.runtime.db.read() as session:
        entries = session.execute(select(func.count()).select_from(LedgerEntry)).scalar_one()
        checkpoint = session.execute(select(func.max(LedgerCheckpoint.tree_size))).scalar_one()
    return int(entries), int(checkpoint or 0)


def _wait_gone(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(running(pid) for pid in pids):
        time.sleep(0.05)
    return {pid for pid in pids if running(pid)}


def test_sigterm_stops_every_process_and_signs_a_final_checkpoint(
    home: Installation, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # No periodic checkpoint during the test: only the final one can cover the new entries.
    tree = _serve(home, tmp_path_factory, CUSTODY_CHECKPOINT_INTERVAL_SECONDS="3600")
    try:
        wallet = home.wallet()
        with httpx.Client(base_url=tree.url, timeout=30) as http:
            created = Api(http.request, home.client()).create(withdrawal(wallet.name))
        assert created.status_code == 201, created.text
        entries, checkpoint = _sizes(home)
        assert checkpoint < entries
        children = tree.children()
        assert {tree.pid_of(role) for role in ROLES} <= children
        # A process still starting has no SIGTERM handler yet: the stop would just end it.
        tree.wait_for(
            "the background process running",
            lambda: "background process running" in tree.output(),
        )

        tree.signal(signal.SIGTERM)
        # The bound, and as much again for the interpreter to exit: never reached when it works.
        assert tree.process.wait(timeout=2 * SHUTDOWN_TIMEOUT) == 0, tree.output()
        assert _wait_gone(children, 5) == set(), tree.output()
    finally:
        tree.stop()
    entries, checkpoint = _sizes(home)
    assert checkpoint == entries
    assert f"final checkpoint at size {entries}" in tree.output()
    assert "all processes stopped" in tree.output()


def test_children_stop_on_their_own_when_the_supervisor_is_killed(
    home: Installation, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tree = _serve(home, tmp_path_factory)
    try:
        children = tree.children()
        assert {tree.pid_of(role) for role in ROLES} <= children
        tree.signal(signal.SIGKILL)
        tree.process.wait(timeout=10)
        assert _wait_gone(children, 2 * SHUTDOWN_TIMEOUT) == set(), tree.output()
    finally:
        tree.stop()
