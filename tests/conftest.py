"""Session-wide test set-up: one real SoftHSM2 token, SQLite and PostgreSQL installations.

SoftHSM reads SOFTHSM2_CONF once per process, so the whole session (and every server or worker
process a test starts, which inherits the environment) shares one token created here, before any
test can load the PKCS#11 library.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from custody.hsm import DevToken, activate_dev_token, ensure_dev_token
from custody.hsm.devtoken import add_dev_token
from tests.support.installation import Installation, InstallationFactory, make_installation
from tests.support.postgres import PostgresServer, postgres_server


def _temp_in_memory() -> None:
    """Temporary files (pytest's tmp_path, the tokens below, what servers and Chromium write)
    on tmpfs when the machine has one and TMPDIR does not name a place: SQLite's and SoftHSM's
    files are still real files, but a commit no longer waits for a disk's fsync (on a 2-core
    VM's ext4 that made file-heavy tests ~15% slower). Set TMPDIR to keep them elsewhere."""
    shm = Path("/dev/shm")
    if "TMPDIR" not in os.environ and shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        os.environ["TMPDIR"] = str(shm)  # for the processes tests start, too
        tempfile.tempdir = None  # gettempdir() looks again


_temp_in_memory()
_HSM_ROOT = Path(tempfile.mkdtemp(prefix="custody-test-hsm-"))
SESSION_TOKEN = ensure_dev_token(_HSM_ROOT / "hsm", "custody-test")
# A second token in the same configuration, as `custody hsm add-token` makes one: SoftHSM lists
# only the tokens present when it initialises, so it is made before anything loads SoftHSM.
SECOND_TOKEN = add_dev_token(_HSM_ROOT / "hsm", "custody-test-b")
THIRD_TOKEN = add_dev_token(_HSM_ROOT / "hsm", "custody-test-c")  # a Safe's third owner's
activate_dev_token(SESSION_TOKEN)

os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(_HSM_ROOT / "hypothesis"))
for _name in [n for n in os.environ if n.startswith("CUSTODY_")]:
    # A developer's own installation settings must not leak into the tests.
    del os.environ[_name]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_HSM_ROOT, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist load` (what -n implies), but a module with module fixtures goes to one worker."""
    if config.getoption("dist") != "load":
        return None  # a mode asked for by name
    from tests.support.scheduling import ModuleFixtureScheduling

    return ModuleFixtureScheduling(config, log)


def pytest_report_header(config: pytest.Config) -> list[str]:
    server = postgres_server()
    if server.available:
        return [f"custody: PostgreSQL at {server.admin_url} (a fresh database per run)"]
    return [
        "custody: NOTICE: no PostgreSQL answers at 127.0.0.1:5432; "
        f"PostgreSQL tests are SKIPPED ({server.reason})"
    ]


@pytest.fixture(scope="session")
def hsm_dev_token() -> DevToken:
    return SESSION_TOKEN


@pytest.fixture(scope="session")
def second_token() -> DevToken:
    """Another token of the session's SoftHSM configuration (an installation's extra token)."""
    return SECOND_TOKEN


@pytest.fixture(scope="session")
def third_token() -> DevToken:
    """A third token of the session's SoftHSM configuration (2-of-3 across three tokens)."""
    return THIRD_TOKEN


@pytest.fixture(scope="session")
def pg_server() -> PostgresServer:
    server = postgres_server()
    if not server.available:
        pytest.skip(f"PostgreSQL not available: {server.reason}")
    return server


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def installation(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installation]:
    """An initialised installation per backend, shared by the tests of a session (of one xdist
    worker), with the allow-all policy that tests which change it put back: which tests a worker
    runs first must not decide what the others find."""
    backend = request.param
    database_url = None
    if backend == "postgres":
        server = request.getfixturevalue("pg_server")
        database_url = server.create_database()
    home = tmp_path_factory.mktemp(f"home-{backend}")
    inst = make_installation(home, SESSION_TOKEN, database_url=database_url, backend=backend)
    inst.allow_all_policy()
    try:
        yield inst
    finally:
        inst.close()
        if database_url is not None:
            request.getfixturevalue("pg_server").drop_database(database_url)


@pytest.fixture(scope="session")
def installations(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstallationFactory]:
    """Makes fresh installations quickly (copies of one initialised template per backend)."""
    server = postgres_server()
    factory = InstallationFactory(
        tmp_path_factory.mktemp("installations"),
        SESSION_TOKEN,
        server if server.available else None,
    )
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_installation(
    request: pytest.FixtureRequest, installations: InstallationFactory
) -> Iterator[Installation]:
    """An installation of this test's own, per backend: free to be changed in any way."""
    if request.param == "postgres":
        request.getfixturevalue("pg_server")  # skips when no PostgreSQL answers
    inst = installations.make(request.param)
    try:
        yield inst
    finally:
        installations.discard(inst)
