"""Never sign twice (invariant 4): one live request per wallet and nonce, freed when it ends."""

from __future__ import annotations

from api_checks import assert_problem, wallet_requests
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes

from custody.signing.worker import SignerWorker
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, WalletInfo


def _deny_wallet(installation: Installation, wallet: WalletInfo) -> None:
    installation.apply_policy(
        "version: 1\nrules:\n"
        f"  - {{id: deny-this-wallet, match: {{type: withdrawal, wallets: [{wallet.name}]}}, "
        "action: deny}\n"
        "  - {id: allow-all, match: {type: withdrawal}, action: allow}\n"
    )


def _signed_nonce_and_value(api: Api, request_id: str, wallet: WalletInfo) -> tuple[int, int]:
    view = api.get(request_id).json()
    assert view["status"] == "signed", view
    raw = view["result"]["raw_transaction"]
    assert Account.recover_transaction(raw) == wallet.address
    fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    return fields["nonce"], fields["value"]


def test_a_signed_nonce_cannot_be_signed_again(
    api: Api, installation: Installation, wallet: WalletInfo, signer: SignerWorker
) -> None:
    first = api.create(withdrawal(wallet.name, amount="100", nonce=5))
    assert first.status_code == 201, first.text
    signer.drain()
    assert _signed_nonce_and_value(api, first.json()["id"], wallet) == (5, 100)
    before = installation.counts()

    other_payload = api.create(withdrawal(wallet.name, amount="200", nonce=5))
    same_payload_new_key = api.create(withdrawal(wallet.name, amount="100", nonce=5))
    for response in (other_payload, same_payload_new_key):
        problem = assert_problem(response, 409, "nonce 5")
        assert problem["type"].endswith("nonce-in-use")
        assert first.json()["id"] in problem["detail"]
    assert installation.counts() == before
    assert [r.id for r in wallet_requests(installation, wallet.name)] == [first.json()["id"]]

    # Other nonces of the wallet are unaffected.
    assert api.create(withdrawal(wallet.name, amount="200", nonce=6)).status_code == 201


def test_a_pending_nonce_is_taken_too(
    api: Api, installation: Installation, wallet: WalletInfo
) -> None:
    first = api.create(withdrawal(wallet.name, amount="100", nonce=0))
    assert first.json()["status"] == "approved"
    before = installation.counts()
    assert_problem(api.create(withdrawal(wallet.name, amount="300", nonce=0)), 409, "nonce 0")
    assert installation.counts() == before


def test_another_clients_nonce_holder_is_not_revealed(
    api: Api, installation: Installation, wallet: WalletInfo
) -> None:
    first = api.create(withdrawal(wallet.name, amount="100", nonce=0))
    assert first.status_code == 201
    other = Api(api.send, installation.client())  # another client of the same app
    problem = assert_problem(other.create(withdrawal(wallet.name, amount="7", nonce=0)), 409)
    assert first.json()["id"] not in problem["detail"]


def test_a_rejected_request_frees_its_nonce(
    api: Api, installation: Installation, wallet: WalletInfo, signer: SignerWorker
) -> None:
    try:
        _deny_wallet(installation, wallet)
        rejected = api.create(withdrawal(wallet.name, amount="100", nonce=3))
        assert rejected.status_code == 201, rejected.text
        assert rejected.json()["status"] == "rejected"
        assert rejected.json()["policy"]["decision"] == "deny"
        assert rejected.json()["policy"]["rule"] == "deny-this-wallet"
    finally:
        installation.allow_all_policy()

    later = api.create(withdrawal(wallet.name, amount="250", nonce=3))
    assert later.status_code == 201, later.text
    assert later.json()["status"] == "approved"
    signer.drain()
    assert _signed_nonce_and_value(api, later.json()["id"], wallet) == (3, 250)
    assert api.get(rejected.json()["id"]).json()["status"] == "rejected"
    assert "result" not in api.get(rejected.json()["id"]).json()


def test_cancelling_frees_the_nonce(
    api: Api, installation: Installation, wallet: WalletInfo, signer: SignerWorker
) -> None:
    first = api.create(withdrawal(wallet.name, amount="100", nonce=4))
    request_id = first.json()["id"]
    cancelled = api.call("POST", f"/v1/requests/{request_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"

    later = api.create(withdrawal(wallet.name, amount="350", nonce=4))
    assert later.status_code == 201, later.text
    assert later.json()["status"] == "approved"
    signer.drain()
    assert _signed_nonce_and_value(api, later.json()["id"], wallet) == (4, 350)
    old = api.get(request_id).json()
    assert old["status"] == "cancelled"
    assert "result" not in old
    signed = [r.id for r in wallet_requests(installation, wallet.name) if r.status == "signed"]
    assert signed == [later.json()["id"]]
