"""`sign_message` (EIP-191): denied by default, signed only when a rule allows it by type."""

from __future__ import annotations

import json

from eth_account import Account
from eth_account.messages import encode_defunct

from custody.signing.worker import SignerWorker
from tests.support.api import Api
from tests.support.installation import Installation, WalletInfo


def body(wallet: str, message: str) -> dict[str, str]:
    return {"type": "sign_message", "wallet": wallet, "message": message}


def test_messages_are_denied_unless_a_rule_allows_them(
    api: Api, wallet: WalletInfo, installation: Installation, signer: SignerWorker
) -> None:
    installation.apply_policy(
        "version: 1\nrules:\n  - {id: withdrawals, match: {type: withdrawal}, action: allow}\n"
    )
    try:
        denied = api.create(body(wallet.name, "log me in")).json()
        assert denied["status"] == "rejected"
        assert denied["policy"]["rule"] is None
        installation.apply_policy(
            "version: 1\nrules:\n  - {id: messages, match: {type: sign_message}, action: allow}\n"
        )
        allowed = api.create(body(wallet.name, "log me in to venue 7\nnonce 42")).json()
        assert allowed["status"] == "approved"
        assert signer.drain() == 1
        signed = api.get(allowed["id"]).json()
        signature = signed["result"]["signature"]
        message = encode_defunct(text="log me in to venue 7\nnonce 42")
        assert Account.recover_message(message, signature=signature) == wallet.address
    finally:
        installation.allow_all_policy()


def test_bad_messages_are_refused(api: Api, wallet: WalletInfo, installation: Installation) -> None:
    before = installation.counts()
    for bad in ("", "bell\x07", "x" * 5000):
        answer = api.create(json.dumps(body(wallet.name, bad)).encode())
        assert answer.status_code == 422, bad
    assert installation.counts() == before
