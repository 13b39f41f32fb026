"""Fixtures for intake tests through the real ASGI app, as tests/api/conftest.py sets them up."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient as HttpClient

from custody.api.app import create_app
from custody.signing.worker import SignerWorker
from tests.support.api import Api
from tests.support.installation import Installation, WalletInfo


@pytest.fixture(scope="session")
def intake_http(installation: Installation) -> Iterator[HttpClient]:
    """The ASGI app over httpx, without an in-process worker: tests sign explicitly."""
    with HttpClient(create_app(installation.runtime, run_worker=False)) as client:
        yield client


@pytest.fixture
def api(intake_http: HttpClient, installation: Installation) -> Api:
    return Api(intake_http.request, installation.client())


@pytest.fixture
def wallet(installation: Installation) -> WalletInfo:
    return installation.wallet()


@pytest.fixture
def signer(installation: Installation) -> SignerWorker:
    worker = SignerWorker(installation.runtime, worker_id="intake-test-worker")
    # The installation is shared by the session: sign what earlier tests left approved, so that
    # a test's own drain() counts exactly the requests that test made.
    worker.drain()
    return worker


@pytest.fixture
def policy(installation: Installation) -> Iterator[Callable[[str], str]]:
    """Apply a policy for one test; the shared installation gets allow-all back afterwards."""
    try:
        yield installation.apply_policy
    finally:
        installation.allow_all_policy()
