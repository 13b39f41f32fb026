"""A node restart mid-flight loses nothing: anvil without automatic mining, so transactions sit
in its pool (which a restart forgets) until the test mines them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from tests.broadcast.conftest import Connected
from tests.broadcast.test_broadcast_nonces import AMOUNT, bare_withdrawal
from tests.support.anvil import Anvil, running_anvil
from tests.support.api import DESTINATION, withdrawal
from tests.support.lifecycle import assert_histories_hold


@pytest.fixture(scope="module")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Anvil]:
    with running_anvil(Path(tmp_path_factory.mktemp("anvil")), extra=("--no-mining",)) as node:
        yield node


def test_a_node_restart_mid_flight_loses_nothing(connected: Connected) -> None:
    anvil, wallet, api = connected.anvil, connected.wallet, connected.api
    start = anvil.nonce(wallet.address)
    before = anvil.balance(DESTINATION)

    # Three broadcast, waiting in the node's pool when it stops.
    sent = [api.create(bare_withdrawal(wallet.name)).json()["id"] for _ in range(3)]
    connected.settle(sent, lambda s: s == "broadcast")
    anvil.stop()

    # Without the node, custody cannot fill a body: one that leaves fields out is refused...
    refused = api.create(bare_withdrawal(wallet.name))
    assert refused.status_code == 503, refused.text
    assert "did not answer" in refused.json()["detail"]
    # ...and one that gives them all is stored and signed, but cannot be sent yet.
    waiting = [
        api.create(withdrawal(wallet.name, amount=str(AMOUNT), nonce=start + 3 + i))
        for i in range(2)
    ]
    waiting_ids = [r.json()["id"] for r in waiting]
    assert [r.status_code for r in waiting] == [201, 201], [r.text for r in waiting]
    connected.signer.drain()
    assert connected.broadcaster.run_once() == 0
    assert {connected.status(r) for r in waiting_ids} == {"signed"}

    # Back, from its saved state but with an empty pool: the first three are sent again.
    anvil.start()
    assert anvil.rpc("eth_getTransactionByHash", _tx_hash(connected, sent[0])) is None
    everything = sent + waiting_ids
    connected.settle(everything, lambda s: s == "broadcast")
    anvil.mine()
    connected.settle(everything, lambda s: s == "confirmed")

    assert anvil.nonce(wallet.address) == start + 5
    assert anvil.balance(DESTINATION) - before == 5 * AMOUNT
    for request_id in everything:
        raw = connected.api.get(request_id).json()["result"]["raw_transaction"]
        assert Account.recover_transaction(raw) == wallet.address
    assert_histories_hold(connected.installation, everything)


def _tx_hash(connected: Connected, request_id: str) -> str:
    return str(connected.api.get(request_id).json()["result"]["tx_hash"])
