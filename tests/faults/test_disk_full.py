"""The disk under the database fills up while `custody serve` runs: calls answer 503 with
Retry-After (never a 500, never a traceback), nothing acknowledged is lost, and once there is
room again everything acknowledged is signed exactly once, without a restart.

A full disk is made the way the kernel reports one to a single process tree: RLIMIT_FSIZE
(`prlimit`) set on every process of the tree to the size the database files have now, so any
write that would grow them fails (EFBIG; Python ignores SIGXFSZ) as ENOSPC would.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from custody.store.models import LedgerEntry, Request
from tests.e2e.process import custody_env
from tests.support.api import Api, withdrawal
from tests.support.cli import invoke
from tests.support.installation import Installation
from tests.support.tree import Tree, children_of, free_port, start

pytestmark = pytest.mark.slow

ROLES = ("api-1", "signer-1", "background")
UNLIMITED = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)


@pytest.fixture
def tree(home: Installation, tmp_path: Path) -> Iterator[Tree]:
    port = free_port()
    env = custody_env(home.env, CUSTODY_WORKER_POLL_SECONDS="0.1")
    running = start(
        ["serve", "--host", "127.0.0.1", "--port", str(port)],
        env,
        tmp_path / "serve.log",
        roles=ROLES,
        port=port,
    )
    try:
        yield running
    finally:
        _limit(running, UNLIMITED)
        running.stop()


def _limit(tree: Tree, limit: tuple[int, int]) -> None:
    for pid in {tree.process.pid, *children_of(tree.process.pid)}:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, limit)


def _database_bytes(home: Installation) -> int:
    files = [home.home / "custody.db", home.home / "custody.db-wal"]
    return max(path.stat().st_size for path in files if path.exists())


def _statuses(home: Installation, ids: list[str]) -> dict[str, str]:
    with home.runtime.db.read() as session:
        rows = session.execute(select(Request.id, Request.status).where(Request.id.in_(ids)))
        return {row.id: row.status for row in rows}


def test_a_full_disk_delays_requests_and_loses_none(tree: Tree, home: Installation) -> None:
    nonce = iter(range(1000))
    with httpx.Client(base_url=tree.url, timeout=30) as http:
        api = Api(http.request, home.client())
        wallet = home.wallet()

        def submit() -> httpx.Response:
            return api.create(withdrawal(wallet.name, nonce=next(nonce)))

        acknowledged = [submit().json()["id"]]
        full = _database_bytes(home)
        _limit(tree, (full, resource.RLIM_INFINITY))
        answers = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum(a.status_code == 503 for a in answers) < 3:
            answer = submit()
            answers.append(answer)
            if answer.status_code == 201:
                acknowledged.append(answer.json()["id"])
        refused = [a for a in answers if a.status_code != 201]
        assert refused, "the disk never filled up: no call was refused"
        for answer in refused:
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert "Retry-After" in answer.headers
            assert "Traceback" not in answer.text
        assert http.get("/healthz").status_code == 200

        _limit(tree, UNLIMITED)  # room again
        acknowledged.append(_wait_created(submit))
        deadline = time.monotonic() + 60
        while set(_statuses(home, acknowledged).values()) != {"signed"}:
            assert time.monotonic() < deadline, _statuses(home, acknowledged)
            time.sleep(0.2)
    with home.runtime.db.read() as session:
        signed = [
            json.loads(e)["data"]["request"]
            for e in session.execute(
                select(LedgerEntry.entry).where(LedgerEntry.kind == "request.signed")
            ).scalars()
        ]
    assert sorted(r for r in signed if r in acknowledged) == sorted(acknowledged)
    verified = invoke(["ledger", "verify"], home.env)
    assert verified.returncode == 0, verified.stderr
    print(  # shown by `make faults`
        f"\ndisk full: {len(acknowledged)} requests acknowledged, {len(refused)} refused with 503 "
        "while full, all acknowledged signed once after room came back"
    )


def _wait_created(submit: object) -> str:
    deadline = time.monotonic() + 30
    while True:
        answer = submit()  # type: ignore[operator]
        if answer.status_code == 201:
            return str(answer.json()["id"])
        assert answer.status_code == 503, answer.text
        assert time.monotonic() < deadline, "still refused long after room came back"
        time.sleep(0.5)
