"""How a broadcast transaction ends: reverted (failed, with the contract's reason), re-included
after a reorg, refused by caps; and what a node of another chain gets (nothing)."""

from __future__ import annotations

from eth_abi.abi import encode

from tests.broadcast.conftest import Connected
from tests.broadcast.test_broadcast_nonces import bare_withdrawal
from tests.intake.intake_support import transfer
from tests.support.api import DESTINATION
from tests.support.cli import invoke, ok_json
from tests.support.lifecycle import assert_histories_hold

REASON = "custody test: always reverts"


def reverting_contract() -> str:
    """Init code of a contract whose every call reverts with Error(REASON): the runtime copies
    the ABI-encoded error from its own code into memory and reverts with it."""
    error = bytes.fromhex("08c379a0") + encode(["string"], [REASON])
    size = len(error)
    assert size < 256
    # PUSH1 size, PUSH1 12, PUSH1 0, CODECOPY, PUSH1 size, PUSH1 0, REVERT, then the error.
    runtime = bytes([0x60, size, 0x60, 12, 0x60, 0, 0x39, 0x60, size, 0x60, 0, 0xFD]) + error
    length = len(runtime)
    # The same, returning the runtime instead of reverting: the deployment.
    init = bytes([0x60, length, 0x60, 12, 0x60, 0, 0x39, 0x60, length, 0x60, 0, 0xF3])
    return "0x" + (init + runtime).hex()


def contract_call(wallet: str, contract: str, **evm: object) -> dict[str, object]:
    body: dict[str, object] = {
        "type": "contract_call",
        "wallet": wallet,
        "to": contract,
        "data": transfer(DESTINATION, 1),
        "value": "0",
    }
    if evm:
        body["evm"] = evm
    return body


def test_a_reverted_transaction_ends_failed_with_its_reason(connected: Connected) -> None:
    anvil, wallet, api = connected.anvil, connected.wallet, connected.api
    contract = anvil.deploy(reverting_contract())

    # The node's estimate says it would fail: refused at intake, nothing stored.
    estimated = api.create(contract_call(wallet.name, contract))
    assert estimated.status_code == 422, estimated.text
    assert "cannot estimate gas" in estimated.json()["detail"]

    # With its own gas limit it is signed and sent, and reverts on chain.
    start = anvil.nonce(wallet.address)
    created = api.create(contract_call(wallet.name, contract, gas=100_000))
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    connected.settle([request_id], lambda s: s == "failed")

    view = api.get(request_id).json()
    receipt = anvil.rpc("eth_getTransactionReceipt", view["result"]["tx_hash"])
    assert int(receipt["status"], 16) == 0
    assert view["reason"].startswith(f"reverted in block {int(receipt['blockNumber'], 16)}")
    assert REASON in view["reason"]
    # The nonce was used on chain: the next request takes the one after it, never this one.
    assert anvil.nonce(wallet.address) == start + 1
    following = api.create(bare_withdrawal(wallet.name))
    assert following.json()["payload"]["transaction"]["nonce"] == str(start + 1)
    connected.settle([following.json()["id"]], lambda s: s == "confirmed")
    failed = [
        e
        for e in connected.installation.ledger_entries("request.failed")
        if e["data"]["request"] == request_id
    ]
    assert [e["data"]["from"] for e in failed] == ["broadcast"]
    assert_histories_hold(connected.installation, [request_id, following.json()["id"]])


def test_a_receipt_lost_in_a_reorg_waits_again_and_confirms(connected: Connected) -> None:
    anvil, wallet, api, inst = (
        connected.anvil,
        connected.wallet,
        connected.api,
        connected.installation,
    )
    chain = f"anvil-{inst.backend}"
    assert invoke(["chains", "set", chain, "--confirmations", "3"], inst.env).returncode == 0
    try:
        created = api.create(bare_withdrawal(wallet.name))
        request_id = created.json()["id"]
        connected.settle([request_id], lambda s: s == "broadcast")
        connected.broadcaster.run_once()  # sees the receipt, one confirmation of three
        first = api.get(request_id).json()["result"]
        assert first["confirmations"] == 1
        anvil.rpc("anvil_rollback", 1)  # the block with it is gone, and so is the transaction
        assert anvil.rpc("eth_getTransactionReceipt", first["tx_hash"]) is None

        connected.broadcaster.run_once()  # the receipt vanished: back to waiting, sent again
        assert connected.status(request_id) == "broadcast"
        anvil.mine(2)
        connected.settle([request_id], lambda s: s == "confirmed")
    finally:
        invoke(["chains", "set", chain, "--confirmations", "1"], inst.env)

    again = [
        e["data"]
        for e in inst.ledger_entries("request.broadcast")
        if e["data"]["request"] == request_id
    ]
    assert [(e["from"], "disappeared" in e["reason"]) for e in again] == [
        ("signed", False),
        ("broadcast", True),
    ]
    receipt = anvil.rpc("eth_getTransactionReceipt", first["tx_hash"])
    assert int(receipt["status"], 16) == 1
    assert api.get(request_id).json()["result"]["confirmations"] >= 3
    assert_histories_hold(inst, [request_id])


def test_fees_above_the_caps_are_refused(connected: Connected) -> None:
    wallet, api, inst = connected.wallet, connected.api, connected.installation
    before = inst.counts()
    chain = f"anvil-{inst.backend}"
    set_cap = invoke(["chains", "set", chain, "--max-fee-per-gas", "1000", "--json"], inst.env)
    assert ok_json(set_cap)["max_fee_per_gas"] == "1000"
    try:
        refused = api.create(bare_withdrawal(wallet.name))
        assert refused.status_code == 422, refused.text
        assert "above chain" in refused.json()["detail"]
        assert "cap of 1000" in refused.json()["detail"]
    finally:
        invoke(["chains", "set", chain, "--max-fee-per-gas", str(10**15)], inst.env)
    # The installation's cap on the whole fee: gas x max_fee_per_gas.
    too_dear = api.create(
        bare_withdrawal(wallet.name, max_fee_per_gas=str(10**13), max_priority_fee_per_gas="1")
    )
    assert too_dear.status_code == 422, too_dear.text
    assert "CUSTODY_MAX_TX_FEE_WEI" in too_dear.json()["detail"]
    assert inst.counts()["requests"] == before["requests"]


def test_a_transaction_whose_nonce_went_elsewhere_is_dropped(connected: Connected) -> None:
    anvil, wallet, api = connected.anvil, connected.wallet, connected.api
    start = anvil.nonce(wallet.address)
    created = api.create(bare_withdrawal(wallet.name))
    request_id = created.json()["id"]
    assert created.json()["payload"]["transaction"]["nonce"] == str(start)
    connected.signer.drain()
    # Meanwhile the account's nonce moves on outside custody (another signer of the same key,
    # a restored backup used elsewhere): anvil_setNonce stands in for those transactions.
    anvil.rpc("anvil_setNonce", wallet.address, hex(start + 2))
    anvil.mine()
    connected.settle([request_id], lambda s: s == "failed")
    reason = api.get(request_id).json()["reason"]
    assert reason.startswith(f"dropped: nonce {start} was used by another transaction")

    # The next request is reconciled with the node's count: nonce start + 2, not start + 1.
    following = api.create(bare_withdrawal(wallet.name))
    assert following.json()["payload"]["transaction"]["nonce"] == str(start + 2)
    connected.settle([following.json()["id"]], lambda s: s == "confirmed")


def test_a_transaction_the_wallet_cannot_pay_for_waits_for_funds(connected: Connected) -> None:
    anvil, wallet, api = connected.anvil, connected.wallet, connected.api
    balance = anvil.balance(wallet.address)
    created = api.create(bare_withdrawal(wallet.name, balance + 10**18, gas=21_000))
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    connected.signer.drain()
    assert connected.broadcaster.run_once() == 0
    assert connected.status(request_id) == "signed"  # refused for now, sent again later

    anvil.fund(wallet.address, 2 * 10**18)
    connected.settle([request_id], lambda s: s == "confirmed")
    assert anvil.balance(DESTINATION) >= balance + 10**18


def test_a_chain_without_a_node_needs_the_whole_evm_block(connected: Connected) -> None:
    wallet, api, inst, anvil = (
        connected.wallet,
        connected.api,
        connected.installation,
        connected.anvil,
    )
    chain = f"anvil-{inst.backend}"
    nothing = invoke(["chains", "set", chain], inst.env)
    assert nothing.returncode != 0
    assert nothing.stderr.strip().splitlines() == [
        "error: nothing to change: give --rpc-url, --confirmations, --max-fee-per-gas or "
        "--disconnect"
    ]
    off = ok_json(invoke(["chains", "set", chain, "--disconnect", "--json"], inst.env))
    assert off["connected"] is False
    try:
        before = inst.counts()["requests"]
        bare = api.create(bare_withdrawal(wallet.name))
        assert bare.status_code == 422, bare.text
        assert bare.json()["detail"].startswith(f"evm: required (chain {chain} has no node")
        partial = api.create(bare_withdrawal(wallet.name, nonce=0, gas=21_000))
        assert partial.status_code == 422, partial.text
        assert "evm.max_fee_per_gas: required" in partial.json()["detail"]
        assert inst.counts()["requests"] == before
    finally:
        on = invoke(["chains", "set", chain, "--rpc-url", anvil.url, "--json"], inst.env)
        assert ok_json(on)["connected"] is True
    connected_again = api.create(bare_withdrawal(wallet.name))
    assert connected_again.status_code == 201, connected_again.text
    connected.settle([connected_again.json()["id"]], lambda s: s == "confirmed")
