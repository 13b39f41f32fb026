"""Fault injection: a private PostgreSQL server to stop and freeze (never the shared one), and
installations of a test's own for the faults that break what an installation runs on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.installation import (
    Installation,
    InstallationFactory,
    allow_all_installation,
)
from tests.support.private_postgres import PrivatePostgres, Unsupported, private_postgres


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of this module's own, on a free port of 127.0.0.1."""
    try:
        with private_postgres() as server:
            yield server
    except Unsupported as exc:
        pytest.skip(f"no private PostgreSQL server: {exc}")


@pytest.fixture
def pg(private_pg: PrivatePostgres) -> Iterator[PrivatePostgres]:
    """The module's private server, running and thawed again after the test, whatever it did."""
    yield private_pg
    private_pg.thaw()
    if not private_pg.running():
        private_pg.start()


@pytest.fixture
def home(installations: InstallationFactory) -> Iterator[Installation]:
    with allow_all_installation(installations) as inst:
        yield inst
