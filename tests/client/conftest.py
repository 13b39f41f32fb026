"""The SDK against a real server: uvicorn on 127.0.0.1 serving an installation of this module's
own, with the signer and webhook threads in process (`run_worker=True`), as `custody serve`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from custody.app import create_app
from custody.client import Client
from tests.support.installation import (
    ClientKeys,
    Installation,
    InstallationFactory,
    WalletInfo,
    allow_all_installation,
)
from tests.support.server import serving
from tests.webhooks.conftest import receiver  # noqa: F401  (a real HTTP receiver)

# Above this many wei a withdrawal waits for two treasury approvals: a request that stays put.
APPROVAL_ABOVE = 10**18  # 1 ETH, as the demo policy
POLICY = f"""
version: 1
rules:
  - id: large
    match: {{type: withdrawal, assets: [ETH], amount_gt: "{APPROVAL_ABOVE}"}}
    action: {{require_approvals: {{count: 2, group: treasury}}}}
  - {{id: small, match: {{type: withdrawal}}, action: allow}}
"""


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def installation(
    request: pytest.FixtureRequest, installations: InstallationFactory
) -> Iterator[Installation]:
    """Not the session's shared installation: a signer runs in this one's server, and would sign
    what other tests expect to sign themselves."""
    if request.param == "postgres":
        request.getfixturevalue("pg_server")  # skips when no PostgreSQL answers
    with allow_all_installation(installations, request.param) as inst:
        inst.apply_policy(POLICY)
        yield inst


@pytest.fixture(scope="module")
def live_url(installation: Installation) -> Iterator[str]:
    with serving(lambda _port: create_app(installation.runtime, run_worker=True)) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def wallet(installation: Installation) -> WalletInfo:
    return installation.wallet()


@pytest.fixture
def desk(installation: Installation) -> ClientKeys:
    return installation.client()


@pytest.fixture
def custody(live_url: str, desk: ClientKeys) -> Iterator[Client]:
    with Client(live_url, desk.id, desk.private_key) as client:
        yield client
