"""The path through the ASGI app: create, sign, read back; verified with eth-account."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes

from custody.errors import Unavailable
from custody.signing import pipeline
from custody.signing.worker import SignerWorker
from tests.support.api import DESTINATION, Api, withdrawal
from tests.support.installation import Installation, WalletInfo


def test_allowed_withdrawal_is_signed_by_the_wallet_key(
    api: Api, wallet: WalletInfo, signer: SignerWorker, installation: Installation
) -> None:
    created = api.create(withdrawal(wallet.name, amount="123", nonce=7))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "approved"
    assert body["policy"]["decision"] == "allow"

    assert signer.drain() == 1

    signed = api.get(body["id"]).json()
    assert signed["status"] == "signed"
    raw = signed["result"]["raw_transaction"]
    assert Account.recover_transaction(raw) == wallet.address
    fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    assert fields["value"] == 123
    assert fields["nonce"] == 7
    assert HexBytes(fields["to"]) == HexBytes(DESTINATION)
    kinds = [
        e["kind"] for e in installation.ledger_entries() if e["data"].get("request") == body["id"]
    ]
    assert kinds == [
        "request.created",
        "policy.evaluated",
        "policy.rechecked",
        "request.signing",
        "request.signed",
    ]


def test_a_batch_the_database_failed_to_record_is_signed_again_at_the_next_turn(
    api: Api,
    wallet: WalletInfo,
    signer: SignerWorker,
    installation: Installation,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The claim committed, the results did not (the database failed in between): the worker
    gives its own claims back at its next turn and signs them then, instead of leaving them
    `signing` until their lease runs out (30 s by default)."""
    created = api.create(withdrawal(wallet.name, amount="5", nonce=8)).json()
    real_finish = pipeline.finish

    def failing_finish(*args: Any, **kwargs: Any) -> bool:
        raise Unavailable("the database is unavailable; try again shortly")

    monkeypatch.setattr(pipeline, "finish", failing_finish)
    with pytest.raises(Unavailable):
        signer.run_once()
    assert api.get(created["id"]).json()["status"] == "signing"  # its lease holds it
    monkeypatch.setattr(pipeline, "finish", real_finish)

    assert signer.run_once()
    signed = api.get(created["id"]).json()
    assert signed["status"] == "signed"
    assert Account.recover_transaction(signed["result"]["raw_transaction"]) == wallet.address
    moves = [
        (e["data"]["from"], e["data"]["to"], e["data"]["reason"])
        for e in installation.ledger_entries()
        if e["data"].get("request") == created["id"] and "to" in e["data"]
    ]
    assert [(f, t) for f, t, _ in moves] == [
        (None, "approved"),
        ("approved", "signing"),
        ("signing", "approved"),
        ("approved", "signing"),
        ("signing", "signed"),
    ]
    assert "before the signature was recorded" in moves[2][2]
