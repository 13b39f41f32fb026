"""Replacing a stuck transaction: a new request naming it signs the same nonce with higher
fees; whichever is mined is confirmed, the other dropped, and the ledger links the two."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account

from tests.broadcast.conftest import Connected
from tests.broadcast.test_broadcast_nonces import bare_withdrawal
from tests.support.lifecycle import assert_histories_hold


@pytest.fixture
def stuck(connected: Connected) -> Iterator[Connected]:
    """The node stops mining: what is sent stays in its pool until the test mines."""
    connected.anvil.rpc("evm_setAutomine", False)
    try:
        yield connected
    finally:
        connected.anvil.rpc("evm_setAutomine", True)


def test_a_stuck_transaction_is_replaced_by_one_with_higher_fees(stuck: Connected) -> None:
    anvil, wallet, api, inst = stuck.anvil, stuck.wallet, stuck.api, stuck.installation
    start = anvil.nonce(wallet.address)
    first = api.create(bare_withdrawal(wallet.name, 1000)).json()
    stuck.settle([first["id"]], lambda s: s == "broadcast")
    old = first["payload"]["transaction"]

    second = api.create(bare_withdrawal(wallet.name, 1000, replaces=first["id"]))
    assert second.status_code == 201, second.text
    new = second.json()["payload"]["transaction"]
    assert new["nonce"] == old["nonce"] == str(start)
    assert int(new["max_fee_per_gas"]) >= int(old["max_fee_per_gas"]) * 11 // 10
    assert int(new["max_priority_fee_per_gas"]) >= int(old["max_priority_fee_per_gas"]) * 11 // 10

    # Only the newest signature of a nonce can be replaced, and only once.
    again = api.create(bare_withdrawal(wallet.name, 1000, replaces=first["id"]))
    assert again.status_code == 409, again.text
    assert f"already replaced by request {second.json()['id']}" in again.json()["detail"]

    stuck.settle([second.json()["id"]], lambda s: s == "broadcast")
    anvil.mine()
    stuck.settle([second.json()["id"], first["id"]], lambda s: s in ("confirmed", "failed"))

    assert stuck.status(second.json()["id"]) == "confirmed"
    dropped = api.get(first["id"]).json()
    assert dropped["status"] == "failed"
    assert dropped["reason"].startswith(f"replaced by request {second.json()['id']}")
    assert anvil.nonce(wallet.address) == start + 1
    mined = api.get(second.json()["id"]).json()["result"]
    receipt = anvil.rpc("eth_getTransactionReceipt", mined["tx_hash"])
    assert int(receipt["status"], 16) == 1
    assert Account.recover_transaction(mined["raw_transaction"]) == wallet.address
    assert anvil.rpc("eth_getTransactionReceipt", dropped["result"]["tx_hash"]) is None

    created = [
        e["data"]
        for e in inst.ledger_entries("request.created")
        if e["data"]["request"] == second.json()["id"]
    ]
    assert created[0]["replaces"] == first["id"]
    assert_histories_hold(inst, [first["id"], second.json()["id"]])


def test_what_cannot_be_replaced_is_refused(connected: Connected) -> None:
    wallet, api, inst = connected.wallet, connected.api, connected.installation
    done = api.create(bare_withdrawal(wallet.name, 1000)).json()
    connected.settle([done["id"]], lambda s: s == "confirmed")
    before = inst.counts()

    mined = api.create(bare_withdrawal(wallet.name, 1000, replaces=done["id"]))
    assert mined.status_code == 409, mined.text
    assert "is confirmed" in mined.json()["detail"]
    unknown = api.create(bare_withdrawal(wallet.name, 1000, replaces="req_nosuchrequest"))
    assert unknown.status_code == 404, unknown.text

    waiting = api.create(bare_withdrawal(wallet.name, 1000)).json()  # approved, not signed
    early = api.create(bare_withdrawal(wallet.name, 1000, replaces=waiting["id"]))
    assert early.status_code == 409, early.text
    assert "only a signed or broadcast transaction" in early.json()["detail"]
    connected.settle([waiting["id"]], lambda s: s == "broadcast")
    cheap = api.create(
        bare_withdrawal(
            wallet.name,
            1000,
            replaces=waiting["id"],
            max_fee_per_gas=waiting["payload"]["transaction"]["max_fee_per_gas"],
        )
    )
    assert cheap.status_code == 422, cheap.text
    assert "a replacement must offer at least" in cheap.json()["detail"]
    connected.settle([waiting["id"]], lambda s: s == "confirmed")
    assert inst.counts()["requests"] == before["requests"] + 1
