"""The path through the ASGI app: create, sign, read back; verified with eth-account."""

from __future__ import annotations

from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes

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
