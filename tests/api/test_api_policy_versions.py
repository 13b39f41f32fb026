"""Each installation evaluates its own policy, even when one process serves several databases.

The test session itself does (SQLite and PostgreSQL installations side by side); so does any
process that opens more than one `CUSTODY_HOME`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient as HttpClient

from custody.app import create_app
from custody.policy_versions.service import active_policy
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, InstallationFactory

ALLOW_ALL = "version: 1\nrules:\n  - {id: allow-all, match: {type: withdrawal}, action: allow}\n"
DENY_ALL = "version: 1\nrules:\n  - {id: deny-all, match: {type: withdrawal}, action: deny}\n"


@pytest.fixture
def two_installations(
    installations: InstallationFactory,
) -> Iterator[tuple[Installation, Installation]]:
    made = [installations.make("sqlite") for _ in range(2)]
    try:
        yield made[0], made[1]
    finally:
        for inst in made:
            installations.discard(inst)


def test_policies_of_two_databases_are_not_mixed_up(
    two_installations: tuple[Installation, Installation],
) -> None:
    allowing, denying = two_installations
    allow_digest = allowing.apply_policy(ALLOW_ALL)
    deny_digest = denying.apply_policy(DENY_ALL)
    assert allow_digest != deny_digest

    with allowing.runtime.db.read() as session:
        first = active_policy(session)
    with denying.runtime.db.read() as session:
        second = active_policy(session)
    assert first is not None
    assert second is not None
    assert first.digest == allow_digest
    assert second.digest == deny_digest

    # And over HTTP: the denying installation must reject, whatever the other one allows.
    wallet = denying.wallet()
    with HttpClient(create_app(denying.runtime, run_worker=False)) as http:
        api = Api(http.request, denying.client())
        created = api.create(withdrawal(wallet.name))
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "rejected"
    assert created.json()["policy"]["rule"] == "deny-all"
