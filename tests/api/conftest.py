from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient as HttpClient

from custody.app import create_app
from custody.signing.worker import SignerWorker
from tests.support.api import Api
from tests.support.installation import Installation, WalletInfo
from tests.support.server import serving


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
    worker = SignerWorker(installation.runtime, worker_id="test-worker")
    # The installation is shared by the session: sign what earlier tests left approved, so that
    # a test's own drain() counts exactly the requests that test made.
    worker.drain()
    return worker


@pytest.fixture(scope="session")
def live_url(installation: Installation) -> Iterator[str]:
    """A real uvicorn server on 127.0.0.1 (free port) serving the app, without a worker."""
    with serving(lambda _port: create_app(installation.runtime, run_worker=False)) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def isolated_http(installation: Installation) -> Iterator[HttpClient]:
    """The app over the same database but with its own Runtime (own connection pools).

    For tests whose failures could leave a pooled connection in a bad state: one failing test
    must not break the shared `http` app (used by every other test) or the next test.
    """
    from custody.runtime import Runtime

    runtime = Runtime(installation.settings)
    try:
        with HttpClient(create_app(runtime, run_worker=False)) as client:
            yield client
    finally:
        runtime.close()
