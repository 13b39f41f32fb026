from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient as HttpClient

from custody.api.app import create_app
from custody.signing.worker import SignerWorker
from tests.support.api import Api
from tests.support.installation import Installation, WalletInfo


@pytest.fixture(scope="session")
def http(installation: Installation) -> Iterator[HttpClient]:
    """The ASGI app over httpx, without an in-process worker: tests sign explicitly."""
    with HttpClient(create_app(installation.runtime, run_worker=False)) as client:
        yield client


@pytest.fixture
def api(http: HttpClient, installation: Installation) -> Api:
    return Api(http.request, installation.client())


@pytest.fixture
def wallet(installation: Installation) -> WalletInfo:
    return installation.wallet()


@pytest.fixture
def signer(installation: Installation) -> SignerWorker:
    return SignerWorker(installation.runtime, worker_id="test-worker")


@pytest.fixture(scope="session", autouse=True)
def _allow_all(installation: Installation) -> None:
    installation.allow_all_policy()
