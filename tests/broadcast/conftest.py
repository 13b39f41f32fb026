"""A connected chain on a real anvil: an installation whose chain `anvil` has the node's URL, a
funded HSM wallet on it, the API over real HTTP, a signer and a broadcaster driven by the test."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from custody.app import create_app
from custody.broadcast.runner import Broadcaster
from custody.signing.worker import SignerWorker
from custody.store.models import Request
from tests.support.anvil import Anvil, running_anvil
from tests.support.api import Api
from tests.support.cli import invoke, ok_json
from tests.support.installation import Installation, InstallationFactory, WalletInfo
from tests.support.server import serving

FUNDS = 10 * 10**18
TOO_MUCH = 1000 * 10**18  # the module's policy denies withdrawals above it


@dataclass
class Connected:
    installation: Installation
    anvil: Anvil
    wallet: WalletInfo
    api: Api
    signer: SignerWorker
    broadcaster: Broadcaster

    def status(self, request_id: str) -> str:
        with self.installation.runtime.db.read() as session:
            request = session.get(Request, request_id)
            assert request is not None
            return request.status

    def settle(
        self, request_ids: list[str], until: Callable[[str], bool], seconds: float = 30
    ) -> None:
        """Sign and broadcast rounds until every request's status satisfies `until`."""
        deadline = time.monotonic() + seconds
        while True:
            self.signer.drain()
            self.broadcaster.run_once()
            statuses = {r: self.status(r) for r in request_ids}
            if all(until(s) for s in statuses.values()):
                return
            assert time.monotonic() < deadline, statuses
            time.sleep(0.05)


def connect_chain(installation: Installation, anvil: Anvil, name: str = "anvil") -> None:
    """Through the CLI, as an operator would."""
    added = invoke(
        [
            "chains",
            "add",
            name,
            "--evm-chain-id",
            str(anvil.chain_id),
            "--rpc-url",
            anvil.url,
            "--confirmations",
            "1",
            "--json",
        ],
        installation.env,
    )
    assert ok_json(added)["connected"] is True


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    with running_anvil(Path(tmp_path_factory.mktemp("anvil"))) as node:
        yield node


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def connected(
    request: pytest.FixtureRequest, installations: InstallationFactory, anvil: Anvil
) -> Iterator[Connected]:
    if request.param == "postgres":
        request.getfixturevalue("pg_server")
    installation = installations.make(request.param)
    installation.apply_policy(
        "version: 1\nrules:\n"
        "  - {id: too-much, action: deny, match: {type: withdrawal, assets: [ETH], "
        f"amount_gt: '{TOO_MUCH}'}}}}\n"
        "  - {id: allow-all, match: {type: withdrawal}, action: allow}\n"
        "  - {id: calls, match: {type: contract_call}, action: allow}\n"
    )
    broadcaster = Broadcaster(installation.runtime)
    try:
        connect_chain(installation, anvil, f"anvil-{request.param}")
        wallet = installation.wallet(chain=f"anvil-{request.param}")
        anvil.fund(wallet.address, FUNDS)
        with (
            serving(lambda _port: create_app(installation.runtime, run_worker=False)) as port,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client,
        ):
            yield Connected(
                installation,
                anvil,
                wallet,
                Api(client.request, installation.client()),
                SignerWorker(installation.runtime, worker_id="test-signer"),
                broadcaster,
            )
    finally:
        broadcaster.close()
        installations.discard(installation)
