"""Database faults: a client gets a prompt 503 with `Retry-After` and no internals, and custody
recovers by itself once the database is back (issue 10; docs/reliability.md).

The server tests run a real `custody serve` against a private PostgreSQL server
(tests/support/private_postgres.py) and stop it or freeze it (SIGSTOP to every one of its
processes: connections stay open and nothing answers, as with a hung disk or a paused VM). The
bounds asserted are generous; what the runs measured is printed (`pytest -s`) and written up in
docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from custody.app import create_app
from custody.errors import CustodyError
from custody.hsm import DevToken
from custody.hsm.devtoken import find_softhsm_module
from custody.http import problems
from custody.runtime import Runtime
from custody.settings import load_settings
from custody.store import Database, DatabaseTimeouts, DatabaseUnavailable
from custody.store.database import DEFAULT_CONNECTIONS, pool_sizes, postgres_connect_args
from custody.web.sessions import COOKIE_NAME
from tests.e2e.process import custody_env
from tests.support.api import Api, withdrawal
from tests.support.installation import ClientKeys, Installation, make_installation
from tests.support.private_postgres import PrivatePostgres
from tests.support.tree import Tree, free_port, start

PROBLEM_JSON = "application/problem+json"
TERMINAL = {"rejected", "expired", "cancelled", "failed"}
# Words of a driver's message that must never reach a client.
INTERNALS = ("127.0.0.1", "psycopg", "OperationalError", "postgres", "Traceback", "SELECT")
SESSION_COOKIE = {"Cookie": f"{COOKIE_NAME}=some-session"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _assert_no_internals(answer: httpx.Response, port: int) -> None:
    for word in (*INTERNALS, str(port)):
        assert word not in answer.text, f"{word!r} in {answer.text}"
        assert word not in json.dumps(dict(answer.headers)), f"{word!r} in {answer.headers}"


def _assert_unavailable(answer: httpx.Response, port: int) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM_JSON)
    assert int(answer.headers["retry-after"]) >= 1
    _assert_no_internals(answer, port)


def _timed(call: Callable[[], httpx.Response]) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    answer = call()
    return time.monotonic() - started, answer


def _measured(what: str, seconds: float) -> None:
    print(f"\nmeasured: {what}: {seconds:.2f} s")  # `pytest -s tests/faults` shows the numbers


# -- in-process: what a client is told ---------------------------------------------------------


def _render(exc: Exception) -> httpx.Response:
    """The answer custody's error handlers give for `exc` raised by a route."""
    app = FastAPI()
    problems.install(app)

    @app.get("/fails")
    def _fails() -> None:
        raise exc

    with TestClient(app, raise_server_exceptions=False) as client:
        return client.get("/fails")


@pytest.fixture
def dead_port() -> int:
    """A port of 127.0.0.1 nothing listens on: connecting is refused at once."""
    return _free_port()


def test_an_unreachable_database_is_a_503_that_names_nothing_internal(
    dead_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database(f"postgresql://custody@127.0.0.1:{dead_port}/custody")
    try:
        with pytest.raises(DatabaseUnavailable) as raised, db.read() as session:
            session.execute(text("SELECT 1"))
    finally:
        db.dispose()
    answer = _render(raised.value)
    _assert_unavailable(answer, dead_port)
    assert answer.json()["type"] == "https://custody.dev/problems/database-unavailable"
    assert answer.json()["detail"] == "the database is unavailable; try again shortly"
    # The operator still learns what happened: in the server log and on the command line.
    assert str(dead_port) in raised.value.diagnosis()
    logged = [r for r in caplog.records if r.name == "custody.store" and r.levelname == "WARNING"]
    assert any(str(dead_port) in r.getMessage() for r in logged)


def _dead_runtime(tmp_path: Path, token: DevToken, port: int) -> Runtime:
    settings = load_settings(
        tmp_path,
        database_url=f"postgresql://custody@127.0.0.1:{port}/custody",
        hsm_module=find_softhsm_module(),
        hsm_token=token.label,
        hsm_pin_file=token.pin_file,
    )
    return Runtime(settings)


def test_the_api_readiness_and_approver_app_answer_503_without_internals(
    tmp_path: Path, hsm_dev_token: DevToken, dead_port: int
) -> None:
    runtime = _dead_runtime(tmp_path, hsm_dev_token, dead_port)
    keys = ClientKeys("cli_unknown", "desk", Ed25519PrivateKey.generate())
    try:
        with TestClient(create_app(runtime, run_worker=False)) as http:
            api = Api(http.request, keys)
            listed = api.call("GET", "/v1/requests")  # the client's key is looked up: 503
            _assert_unavailable(listed, dead_port)

            ready = http.get("/readyz")
            _assert_unavailable(ready, dead_port)
            assert ready.json()["checks"]["database"] == "unavailable"

            page = http.get("/app/", headers=SESSION_COOKIE)
            assert page.status_code == 503
            assert page.headers["content-type"].startswith("text/html")
            assert int(page.headers["retry-after"]) >= 1
            assert "Back in a moment" in page.text
            _assert_no_internals(page, dead_port)
    finally:
        runtime.close()


def test_an_unexpected_error_shows_no_traceback(
    tmp_path: Path, hsm_dev_token: DevToken, dead_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash injected where no handler expects one: a generic 500, details only in the log."""

    def crash(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("boom in /srv/custody/secret.py line 12")

    monkeypatch.setattr("custody.api.ops.generate_latest", crash)
    monkeypatch.setattr("custody.web.sessions.lookup", crash)
    runtime = _dead_runtime(tmp_path, hsm_dev_token, dead_port)
    try:
        with TestClient(
            create_app(runtime, run_worker=False), raise_server_exceptions=False
        ) as http:
            # The session lookup crashes before its read block ever needs the database.
            for answer in (http.get("/metrics"), http.get("/app/", headers=SESSION_COOKIE)):
                assert answer.status_code == 500, answer.text
                for word in ("Traceback", "boom", "secret.py", "RuntimeError"):
                    assert word not in answer.text
            assert http.get("/metrics").headers["content-type"].startswith(PROBLEM_JSON)
    finally:
        runtime.close()


def test_a_locked_sqlite_database_is_a_busy_503(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    db = Database(url, timeouts=DatabaseTimeouts(sqlite_busy_seconds=0.2))
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
        with pytest.raises(DatabaseUnavailable) as raised, db.write() as session:
            session.execute(text("SELECT 1"))
    finally:
        holder.close()
        db.dispose()
    assert raised.value.message == "the database is busy; try again shortly"
    assert raised.value.headers() == {"Retry-After": "1"}


def test_writers_of_one_process_take_turns_before_sqlites_lock(tmp_path: Path) -> None:
    """A second write of this process waits for the first on the process's own lock (woken the
    moment it ends, never sleeping in SQLite's busy handler), bounded like SQLite's wait; a
    write that failed hands its turn on."""
    db = Database(
        f"sqlite:///{tmp_path / 'turns.db'}", timeouts=DatabaseTimeouts(sqlite_busy_seconds=0.3)
    )
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.write() as session:
            session.execute(text("SELECT 1"))
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        with pytest.raises(DatabaseUnavailable) as raised, db.write():
            pass
        assert raised.value.message == "the database is busy; try again shortly"
        assert "another write of this process" in raised.value.cause
        release.set()
        holder.join(10)
        with pytest.raises(RuntimeError), db.write():
            raise RuntimeError("a write that fails")
        with db.write() as session:  # its turn was handed on
            assert session.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        release.set()
        holder.join(10)
        db.dispose()


def test_migrations_run_without_a_statement_timeout() -> None:
    url = "postgresql://custody@db.internal:5432/custody?options=-c%20search_path%3Dcustody"
    timeouts = DatabaseTimeouts(statement_seconds=0.2)
    assert "options" not in postgres_connect_args(url, timeouts, statement_seconds=0)
    served = postgres_connect_args(url, timeouts)
    assert served["options"] == "-c search_path=custody -c statement_timeout=200"
    assert served["connect_timeout"] == 5
    assert served["keepalives"] == 1


# -- in-process against the private server -----------------------------------------------------


def test_pool_exhaustion_is_a_busy_503(pg: PrivatePostgres) -> None:
    db = Database(pg.url, timeouts=DatabaseTimeouts(pool_seconds=0.3))
    try:
        with contextlib.ExitStack() as held:
            # every pooled connection in use (a process's 30, but the liveness probe's own)
            for _ in range(sum(pool_sizes(DEFAULT_CONNECTIONS))):
                held.enter_context(db.read()).execute(text("SELECT 1"))
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailable) as raised, db.read() as session:
                session.execute(text("SELECT 1"))
            assert time.monotonic() - started < 5
    finally:
        db.dispose()
    answer = _render(raised.value)
    _assert_unavailable(answer, pg.port)
    assert answer.headers["retry-after"] == "1"
    assert answer.json()["detail"] == "the database is busy; try again shortly"


def test_a_statement_over_the_timeout_is_a_503(pg: PrivatePostgres) -> None:
    db = Database(pg.url, timeouts=DatabaseTimeouts(statement_seconds=0.2))
    try:
        with db.read() as session:
            assert session.execute(text("SHOW statement_timeout")).scalar_one() == "200ms"
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable) as raised, db.read() as session:
            session.execute(text("SELECT pg_sleep(5)"))
        assert time.monotonic() - started < 4
    finally:
        db.dispose()
    assert raised.value.message == "the database did not answer in time; try again shortly"
    _assert_unavailable(_render(raised.value), pg.port)


def test_a_frozen_server_is_cut_off_and_found_again(pg: PrivatePostgres) -> None:
    db = Database(pg.url)  # the default timeouts
    try:
        with db.read() as session:
            session.execute(text("SELECT 1"))  # a pooled connection, left open into the freeze
        with pg.frozen_for_a_while():
            started = time.monotonic()
            assert db.unanswered(0.8) is not None
            assert time.monotonic() - started < 2
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailable) as raised, db.read() as session:
                session.execute(text("SELECT 1"))
            first = time.monotonic() - started
            _measured("in-process call on a frozen server, to its 503", first)
            assert first < 15
            assert raised.value.message == "the database is not answering; try again shortly"
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailable), db.read():
                pass
            assert time.monotonic() - started < 1  # refused at once while it does not answer
        _eventually(lambda: _answers(db), within=15)
    finally:
        db.dispose()


def _answers(db: Database) -> bool:
    try:
        with db.read() as session:
            return bool(session.execute(text("SELECT 1")).scalar_one() == 1)
    except DatabaseUnavailable:
        return False


def _eventually(check: Callable[[], bool], *, within: float) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within, f"not within {within} s"
        time.sleep(0.1)
    return time.monotonic() - started


# -- a real `custody serve` against the private server -------------------------------------------


ROLES = ("api-1", "signer-1", "background")


@contextlib.contextmanager
def _serving(inst: Installation, log: Path, **settings: str) -> Iterator[Tree]:
    port = free_port()
    env = custody_env(inst.env, CUSTODY_WORKER_POLL_SECONDS="0.05", **settings)
    argv = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    tree = start(argv, env, log, roles=ROLES, port=port)
    try:
        yield tree
    finally:
        tree.stop()


@pytest.fixture(scope="module")
def inst(
    private_pg: PrivatePostgres,
    hsm_dev_token: DevToken,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Installation]:
    home = tmp_path_factory.mktemp("home-private-pg")
    installation = make_installation(
        home, hsm_dev_token, database_url=private_pg.url, backend="postgres"
    )
    installation.allow_all_policy()
    try:
        yield installation
    finally:
        installation.close()


@pytest.fixture(scope="module")
def served(inst: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    """One `custody serve` for the module: it must recover from every fault without a restart."""
    with _serving(inst, tmp_path_factory.mktemp("serve") / "serve.log") as serve:
        yield serve


@pytest.fixture(scope="module")
def desk(inst: Installation) -> tuple[ClientKeys, str]:
    """A trading client and a wallet, made while the database answers."""
    return inst.client(), inst.wallet().name


def _signed(api: Api, request_id: str, *, within: float = 30) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def signed() -> bool:
        current = api.get(request_id)
        assert current.status_code == 200, current.text
        found.update(current.json())
        assert found["status"] not in TERMINAL, current.text
        return found["status"] == "signed"

    _eventually(signed, within=within)
    return found


def test_a_frozen_database_is_a_prompt_503_and_recovers_without_a_restart(
    pg: PrivatePostgres, served: Tree, desk: tuple[ClientKeys, str]
) -> None:
    client, wallet = desk
    with httpx.Client(base_url=served.url, timeout=60) as http:
        api = Api(http.request, client)
        before = api.create(withdrawal(wallet, nonce=1))
        assert before.status_code == 201, before.text
        _signed(api, before.json()["id"])  # pooled connections are open when the freeze comes

        key, body = str(uuid.uuid4()), withdrawal(wallet, nonce=2)
        with pg.frozen_for_a_while():
            took, health = _timed(lambda: http.get("/healthz"))
            assert health.status_code == 200
            assert took < 2

            took, ready = _timed(lambda: http.get("/readyz"))
            _measured("frozen: /readyz answered 503", took)
            _assert_unavailable(ready, pg.port)
            assert ready.json()["checks"]["database"] != "ok"
            assert took < 3

            took, metrics = _timed(lambda: http.get("/metrics"))
            _measured("frozen: /metrics answered without the custody_* metrics", took)
            assert metrics.status_code == 200
            assert "custody_metrics_database_up 0.0" in metrics.text
            assert "custody_requests" not in metrics.text
            assert took < 4

            took, created = _timed(lambda: api.create(body, key=key))
            _measured("frozen: first API call answered 503", took)
            _assert_unavailable(created, pg.port)
            assert took < 20  # the connect timeout and the liveness check, never the freeze

            def not_answering() -> bool:
                return bool(http.get("/readyz").json()["checks"]["database"] == "not answering")

            _eventually(not_answering, within=15)  # custody knows now: it refuses at once
            took, again = _timed(lambda: api.create(body, key=key))
            _measured("frozen: next API call answered 503", took)
            _assert_unavailable(again, pg.port)
            assert took < 3

            took, ready = _timed(lambda: http.get("/readyz"))
            _assert_unavailable(ready, pg.port)
            assert took < 3
            thawed = time.monotonic()

        recovered = _eventually(lambda: http.get("/readyz").status_code == 200, within=30)
        _measured("thawed: /readyz 200 again", recovered)
        _eventually(
            lambda: "custody_metrics_database_up 1.0" in http.get("/metrics").text, within=10
        )
        retried = api.create(body, key=key)  # the same call again, as Retry-After invites
        _measured("thawed: first request created again", time.monotonic() - thawed)
        assert retried.status_code == 201, retried.text
        signed = _signed(api, retried.json()["id"])
        assert "raw_transaction" in signed["result"]
        assert api.create(body, key=key).json()["id"] == retried.json()["id"]  # one request
    assert "Traceback" not in served.output()


def test_a_stopped_database_is_a_503_and_recovers_without_a_restart(
    pg: PrivatePostgres, served: Tree, desk: tuple[ClientKeys, str]
) -> None:
    client, wallet = desk
    with httpx.Client(base_url=served.url, timeout=60) as http:
        api = Api(http.request, client)
        pg.stop("immediate")
        took, created = _timed(lambda: api.create(withdrawal(wallet, nonce=3)))
        _measured("stopped: API call answered 503", took)
        _assert_unavailable(created, pg.port)
        assert took < 10
        took, ready = _timed(lambda: http.get("/readyz"))
        _measured("stopped: /readyz answered 503", took)
        _assert_unavailable(ready, pg.port)
        assert took < 3

        pg.start()
        started = time.monotonic()
        recovered = _eventually(lambda: http.get("/readyz").status_code == 200, within=30)
        _measured("restarted: /readyz 200 again", recovered)
        created = api.create(withdrawal(wallet, nonce=3))
        assert created.status_code == 201, created.text
        _signed(api, created.json()["id"])
        _measured("restarted: a request created and signed", time.monotonic() - started)
    assert "Traceback" not in served.output()


def test_sigterm_stops_serve_while_the_database_is_frozen(
    pg: PrivatePostgres,
    inst: Installation,
    desk: tuple[ClientKeys, str],
    tmp_path: Path,
) -> None:
    client, wallet = desk
    # A short bound: the stop waits on the frozen database until it runs out.
    bound = {"CUSTODY_SHUTDOWN_TIMEOUT_SECONDS": "3"}
    with _serving(inst, tmp_path / "serve.log", **bound) as serve:
        with httpx.Client(base_url=serve.url, timeout=60) as http:
            api = Api(http.request, client)
            assert api.create(withdrawal(wallet, nonce=4)).status_code == 201
            answers: list[httpx.Response | Exception] = []

            def in_flight() -> None:
                try:
                    answers.append(api.create(withdrawal(wallet, nonce=5)))
                except httpx.HTTPError as exc:
                    answers.append(exc)

            with pg.frozen_for_a_while():
                caller = threading.Thread(target=in_flight)
                caller.start()
                time.sleep(0.5)  # the call is waiting on the database now
                serve.process.send_signal(signal.SIGTERM)
                started = time.monotonic()
                try:
                    code = serve.process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    pytest.fail(f"custody serve ignored SIGTERM:\n{serve.output()}")
                stopped = time.monotonic() - started
                caller.join(timeout=30)
        _measured(f"frozen: SIGTERM to exit (status {code})", stopped)
        assert stopped < 3 + 5  # the bound, and the supervisor's own stop after it
        assert code in (0, 1), serve.output()  # 1: the stop ran out of time, still a stop
        assert len(answers) == 1
        if isinstance(answers[0], httpx.Response):
            _assert_unavailable(answers[0], pg.port)


HANGING_STOP = """
import asyncio, contextlib, sys
from fastapi import FastAPI
from custody.http.serving import ServerConfig, run
from custody.settings import load_settings

@contextlib.asynccontextmanager
async def lifespan(app):
    yield
    await asyncio.Event().wait()  # a step of the stop that never ends

settings = load_settings(sys.argv[1], shutdown_timeout_seconds=1)
run(ServerConfig(FastAPI(lifespan=lifespan), settings, host="127.0.0.1", port=int(sys.argv[2])))
"""


def test_a_stop_that_hangs_ends_at_the_bound(tmp_path: Path) -> None:
    """Whatever keeps a stop waiting (a thread in a driver, a shutdown step), the process exits
    once CUSTODY_SHUTDOWN_TIMEOUT_SECONDS have passed, with status 1 and a line saying why."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", HANGING_STOP, str(tmp_path), str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:

        def listening() -> bool:
            assert process.poll() is None, process.communicate()[0]
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        _eventually(listening, within=30)
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        output, _ = process.communicate(timeout=20)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1, output
    assert b"the stop took longer than 1 s" in output
    assert took < 10


def test_custody_errors_keep_their_headers() -> None:
    """DatabaseUnavailable is a CustodyError like any other: the API and CLI paths treat it so."""
    exc = DatabaseUnavailable(cause="OperationalError: server at 127.0.0.1 port 5432")
    assert isinstance(exc, CustodyError)
    assert exc.status == 503
    assert exc.headers() == {"Retry-After": "5"}
    assert "127.0.0.1" not in exc.message
    assert "127.0.0.1" in exc.diagnosis()
