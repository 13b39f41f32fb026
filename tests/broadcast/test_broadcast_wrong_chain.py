"""A node of another chain gets nothing: refused when the chain is added, and when the node
behind a configured URL turns out to serve another chain id (checked on every connection)."""

from __future__ import annotations

from tests.broadcast.conftest import Connected
from tests.broadcast.test_broadcast_nonces import bare_withdrawal
from tests.support.api import withdrawal
from tests.support.cli import invoke

OTHER_CHAIN_ID = 31338


def test_adding_a_chain_whose_node_serves_another_chain_id_is_refused(
    connected: Connected,
) -> None:
    inst, anvil = connected.installation, connected.anvil
    before = inst.counts()
    refused = invoke(
        ["chains", "add", "goerli-ish", "--evm-chain-id", "5", "--rpc-url", anvil.url],
        inst.env,
    )
    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert "serves chain id 31337" in lines[0]
    assert "configured with chain id 5" in lines[0]
    assert inst.counts() == before
    listed = invoke(["chains", "list", "--json"], inst.env)
    assert "goerli-ish" not in listed.stdout


def test_a_node_that_now_serves_another_chain_gets_nothing(connected: Connected) -> None:
    anvil, wallet, api = connected.anvil, connected.wallet, connected.api
    signed = api.create(withdrawal(wallet.name, amount="1000", nonce=anvil.nonce(wallet.address)))
    assert signed.status_code == 201, signed.text
    request_id = signed.json()["id"]
    connected.signer.drain()
    tx_hash = api.get(request_id).json()["result"]["tx_hash"]

    # The same URL, now a node of chain 31338 (an operator's mistake, a provider's switch).
    anvil.stop()
    anvil.state.unlink()
    anvil.chain_id = OTHER_CHAIN_ID
    anvil.start()
    try:
        assert connected.broadcaster.run_once() == 0
        assert connected.status(request_id) == "signed"
        assert anvil.rpc("eth_getTransactionByHash", tx_hash) is None
        refused = api.create(bare_withdrawal(wallet.name))
        assert refused.status_code == 503, refused.text
        assert "serves chain id 31338" in refused.json()["detail"]
    finally:
        anvil.stop()
        anvil.state.unlink(missing_ok=True)
        anvil.chain_id = 31337
        anvil.start()

    # The right node again (a fresh one: fund the wallet): it is checked, and gets it.
    anvil.fund(wallet.address, 10**18)
    connected.settle([request_id], lambda s: s == "confirmed")
    receipt = anvil.rpc("eth_getTransactionReceipt", tx_hash)
    assert int(receipt["status"], 16) == 1
