from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from custody.hsm import DevToken
from tests.support.installation import Installation, make_installation


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def own_installation(
    request: pytest.FixtureRequest, tmp_path: Path, hsm_dev_token: DevToken
) -> Iterator[Installation]:
    """An installation of this test's own: rows written behind custody's back stay here."""
    backend = request.param
    database_url = None
    if backend == "postgres":
        database_url = request.getfixturevalue("pg_server").create_database()
    home = tmp_path / f"requests-{backend}-{secrets.token_hex(4)}"
    inst = make_installation(home, hsm_dev_token, database_url=database_url, backend=backend)
    try:
        yield inst
    finally:
        inst.close()
        if database_url is not None:
            request.getfixturevalue("pg_server").drop_database(database_url)
