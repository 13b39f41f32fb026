"""What custody filled in is evidence the signer checks, not a row it believes."""

from __future__ import annotations

import json

from sqlalchemy import update

from custody.runtime import Runtime
from custody.signing.worker import SignerWorker
from custody.store.models import Request
from tests.broadcast.conftest import Connected
from tests.broadcast.test_broadcast_nonces import bare_withdrawal


def test_an_edited_fill_gets_nothing_signed(connected: Connected) -> None:
    api, inst = connected.api, connected.installation
    created = api.create(bare_withdrawal(connected.wallet.name))
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    entry = next(
        e for e in inst.ledger_entries("request.created") if e["data"]["request"] == request_id
    )
    filled = entry["data"]["filled"]
    assert set(filled) == {"nonce", "gas", "max_fee_per_gas", "max_priority_fee_per_gas"}
    assert filled["nonce"] == created.json()["payload"]["transaction"]["nonce"]

    # An insider raises the tip in the stored fill: the body decoded with it no longer gives
    # the digest that was approved.
    edited = dict(filled, max_priority_fee_per_gas=filled["max_fee_per_gas"])
    with inst.runtime.db.write() as session:
        session.execute(
            update(Request).where(Request.id == request_id).values(evm_fill=json.dumps(edited))
        )
    connected.signer.drain()
    view = api.get(request_id).json()
    assert view["status"] == "failed"
    assert "does not match its approved digest" in view["reason"]
    assert "result" not in view


def test_the_signer_checks_the_fee_cap_again(connected: Connected) -> None:
    api, inst = connected.api, connected.installation
    created = api.create(bare_withdrawal(connected.wallet.name))
    request_id = created.json()["id"]
    tx = created.json()["payload"]["transaction"]
    fee = int(tx["gas"]) * int(tx["max_fee_per_gas"])
    # The cap came down after intake (a signer with other settings): nothing is signed.
    lowered = Runtime(inst.settings.model_copy(update={"max_tx_fee_wei": fee - 1}))
    try:
        SignerWorker(lowered, worker_id="strict-signer").drain()
    finally:
        lowered.close()
    view = api.get(request_id).json()
    assert view["status"] == "failed"
    assert "CUSTODY_MAX_TX_FEE_WEI" in view["reason"]
    # Its nonce is free again (it was never signed): the next request takes it.
    following = api.create(bare_withdrawal(connected.wallet.name))
    assert following.json()["payload"]["transaction"]["nonce"] == tx["nonce"]
    connected.settle([following.json()["id"]], lambda s: s == "confirmed")


def test_a_nonce_generation_the_client_did_not_ask_for_gets_nothing_signed(
    connected: Connected,
) -> None:
    api, inst = connected.api, connected.installation
    created = api.create(bare_withdrawal(connected.wallet.name))
    request_id = created.json()["id"]
    # An insider makes it look like a replacement (the one way a nonce is signed twice).
    with inst.runtime.db.write() as session:
        session.execute(update(Request).where(Request.id == request_id).values(nonce_generation=1))
    connected.signer.drain()
    view = api.get(request_id).json()
    assert view["status"] == "failed"
    assert "named no request to replace" in view["reason"]
