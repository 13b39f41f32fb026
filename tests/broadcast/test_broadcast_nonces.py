"""Nonces, fees and finality on a connected chain, against a real anvil node."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes

from tests.broadcast.conftest import TOO_MUCH, Connected
from tests.support.api import DESTINATION
from tests.support.cli import invoke, ok_json
from tests.support.lifecycle import assert_histories_hold

CONCURRENT = 20
AMOUNT = 10**15


def bare_withdrawal(
    wallet: str, amount: int = AMOUNT, *, replaces: str | None = None, **evm: Any
) -> dict[str, Any]:
    """No `evm` block, or only the fields given: the connected chain fills the rest."""
    body: dict[str, Any] = {
        "type": "withdrawal",
        "wallet": wallet,
        "asset": "ETH",
        "amount": str(amount),
        "destination": DESTINATION,
    }
    if evm:
        body["evm"] = evm
    if replaces is not None:
        body["replaces"] = replaces
    return body


def test_twenty_concurrent_withdrawals_confirm_with_consecutive_nonces(
    connected: Connected,
) -> None:
    anvil, wallet = connected.anvil, connected.wallet
    start = anvil.nonce(wallet.address)
    before = anvil.balance(DESTINATION)
    bodies = [bare_withdrawal(wallet.name, AMOUNT + i) for i in range(CONCURRENT)]
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(connected.api.create, bodies))
    assert [r.status_code for r in responses] == [201] * CONCURRENT, [r.text for r in responses]
    ids = [r.json()["id"] for r in responses]
    # The approver (and the client) see the final transaction: its nonce, gas and fees.
    nonces = sorted(int(r.json()["payload"]["transaction"]["nonce"]) for r in responses)
    assert nonces == list(range(start, start + CONCURRENT))
    for response in responses:
        tx = response.json()["payload"]["transaction"]
        assert tx["gas"] == "21000"
        assert int(tx["max_fee_per_gas"]) >= int(tx["max_priority_fee_per_gas"]) > 0

    connected.settle(ids, lambda s: s == "confirmed")

    # Checked against the node, with code that did not make the transactions.
    assert anvil.nonce(wallet.address) == start + CONCURRENT
    assert anvil.balance(DESTINATION) - before == sum(AMOUNT + i for i in range(CONCURRENT))
    for request_id in ids:
        view = connected.api.get(request_id).json()
        result = view["result"]
        assert Account.recover_transaction(result["raw_transaction"]) == wallet.address
        receipt = anvil.rpc("eth_getTransactionReceipt", result["tx_hash"])
        assert int(receipt["status"], 16) == 1
        assert result["block_number"] == int(receipt["blockNumber"], 16)
        assert result["confirmations"] >= 1
    kinds = [
        e["kind"]
        for e in connected.installation.ledger_entries()
        if e["data"].get("request") == ids[0]
    ]
    assert kinds[-3:] == ["request.signed", "request.broadcast", "request.confirmed"]
    assert_histories_hold(connected.installation, ids)
    # The broadcaster's entries are ledger entries like any: checkpointed and verified.
    env = connected.installation.env
    ok_json(invoke(["ledger", "checkpoint", "--json"], env))
    assert ok_json(invoke(["ledger", "verify", "--json"], env))["ok"] is True


def test_a_cancelled_requests_nonce_goes_to_the_next_request(connected: Connected) -> None:
    anvil, wallet, api = connected.anvil, connected.wallet, connected.api
    start = anvil.nonce(wallet.address)
    # Approved, not yet signed (no signer runs until `settle`): it holds its nonce.
    held = api.create(bare_withdrawal(wallet.name))
    assert held.status_code == 201, held.text
    after = api.create(bare_withdrawal(wallet.name))
    held_nonce = int(held.json()["payload"]["transaction"]["nonce"])
    assert held_nonce == start
    assert int(after.json()["payload"]["transaction"]["nonce"]) == start + 1

    # Cancelled before it was signed: its nonce is free again, and fills the gap.
    cancel = api.call("POST", f"/v1/requests/{held.json()['id']}/cancel")
    assert cancel.status_code == 200, cancel.text
    refill = api.create(bare_withdrawal(wallet.name))
    assert int(refill.json()["payload"]["transaction"]["nonce"]) == start
    ids = [after.json()["id"], refill.json()["id"]]
    connected.settle(ids, lambda s: s == "confirmed")
    assert anvil.nonce(wallet.address) == start + 2


def test_a_rejected_requests_nonce_goes_to_the_next_request(connected: Connected) -> None:
    anvil, wallet, api = connected.anvil, connected.wallet, connected.api
    start = anvil.nonce(wallet.address)
    denied = api.create(bare_withdrawal(wallet.name, TOO_MUCH + 1))
    assert denied.status_code == 201, denied.text
    assert denied.json()["status"] == "rejected"
    assert denied.json()["payload"]["transaction"]["nonce"] == str(start)
    following = api.create(bare_withdrawal(wallet.name))
    assert following.json()["payload"]["transaction"]["nonce"] == str(start)
    connected.settle([following.json()["id"]], lambda s: s == "confirmed")
    assert anvil.nonce(wallet.address) == start + 1


def test_a_pinned_nonce_still_works_and_fees_are_filled(connected: Connected) -> None:
    anvil, wallet = connected.anvil, connected.wallet
    start = anvil.nonce(wallet.address)
    created = connected.api.create(bare_withdrawal(wallet.name, nonce=start))
    assert created.status_code == 201, created.text
    tx = created.json()["payload"]["transaction"]
    assert tx["nonce"] == str(start)
    connected.settle([created.json()["id"]], lambda s: s == "confirmed")
    raw = connected.api.get(created.json()["id"]).json()["result"]["raw_transaction"]
    fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    assert fields["nonce"] == start
    assert fields["chainId"] == anvil.chain_id


def test_wallet_balance_shows_the_node_the_pending_amounts_and_the_next_nonce(
    connected: Connected,
) -> None:
    anvil, wallet, api, inst = (
        connected.anvil,
        connected.wallet,
        connected.api,
        connected.installation,
    )
    start = anvil.nonce(wallet.address)
    waiting = api.create(bare_withdrawal(wallet.name, 777))  # approved, not yet signed
    assert waiting.status_code == 201, waiting.text

    shown = ok_json(invoke(["wallets", "balance", wallet.name, "--json"], inst.env))
    assert shown["address"] == wallet.address
    assert shown["balance"] == str(anvil.balance(wallet.address))
    assert shown["pending"] == {"ETH": "777"}
    assert shown["next_nonce"] == start + 1
    assert shown["connected"] is True

    listed = api.call("GET", "/v1/wallets")
    assert listed.status_code == 200, listed.text
    [mine] = [w for w in listed.json()["items"] if w["name"] == wallet.name]
    assert mine == shown

    connected.settle([waiting.json()["id"]], lambda s: s == "confirmed")
    after = ok_json(invoke(["wallets", "balance", wallet.name, "--json"], inst.env))
    assert after["pending"] == {}
    assert after["balance"] == str(anvil.balance(wallet.address))
    assert int(after["balance"]) < int(shown["balance"]) - 777  # the amount and the fee

    unknown = invoke(["wallets", "balance", "no-such-wallet"], inst.env)
    assert unknown.returncode != 0
    assert "unknown wallet" in unknown.stderr
