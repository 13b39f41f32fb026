"""Re-check before signing (invariant 8): the policy in force at signing time decides."""

from __future__ import annotations

from api_checks import request_kinds, wallet_requests

from custody.signing.worker import SignerWorker
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, WalletInfo


def _policy_for(wallet: WalletInfo, action: str) -> str:
    return (
        "version: 1\nrules:\n"
        f"  - {{id: tightened, match: {{type: withdrawal, wallets: [{wallet.name}]}}, "
        f"action: {action}}}\n"
        "  - {id: allow-all, match: {type: withdrawal}, action: allow}\n"
    )


def test_a_policy_tightened_after_approval_stops_the_signature(
    api: Api, installation: Installation, wallet: WalletInfo, signer: SignerWorker
) -> None:
    created = api.create(withdrawal(wallet.name, amount="500", nonce=0))
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "approved"
    request_id = created.json()["id"]
    try:
        digest = installation.apply_policy(_policy_for(wallet, "deny"))
        signer.drain()
    finally:
        installation.allow_all_policy()

    view = api.get(request_id).json()
    assert view["status"] == "rejected"
    assert "result" not in view
    assert "re-check" in view["reason"]
    assert request_kinds(installation, request_id) == [
        "request.created",
        "policy.evaluated",
        "policy.rechecked",
        "request.rejected",
    ]
    recheck = installation.ledger_entries("policy.rechecked")[-1]["data"]
    assert recheck["request"] == request_id
    assert recheck["policy_digest"] == digest
    assert recheck["allowed"] is False
    moved = installation.ledger_entries("request.rejected")[-1]["data"]
    assert (moved["request"], moved["from"], moved["to"]) == (request_id, "approved", "rejected")
    assert moved["reason"] == view["reason"]
    assert recheck["result"]["decision"] == "deny"
    assert recheck["result"]["rule"] == "tightened"
    row = wallet_requests(installation, wallet.name)[0]
    assert row.result_raw is None
    assert row.result_tx_hash is None

    # Allowing again later does not revive it: rejected is final.
    signer.drain()
    assert api.get(request_id).json()["status"] == "rejected"


def test_a_policy_now_requiring_approvals_sends_it_back(
    api: Api, installation: Installation, wallet: WalletInfo, signer: SignerWorker
) -> None:
    created = api.create(withdrawal(wallet.name, amount="500", nonce=0))
    request_id = created.json()["id"]
    try:
        installation.apply_policy(
            _policy_for(wallet, "{require_approvals: {count: 2, group: treasury}}")
        )
        signer.drain()
    finally:
        installation.allow_all_policy()

    view = api.get(request_id).json()
    assert view["status"] == "pending_approval"
    assert "result" not in view
    assert request_kinds(installation, request_id)[-2:] == [
        "policy.rechecked",
        "request.pending_approval",
    ]
    assert "request.signing" not in request_kinds(installation, request_id)


def test_an_unchanged_policy_lets_it_be_signed(
    api: Api, installation: Installation, wallet: WalletInfo, signer: SignerWorker
) -> None:
    """The counterpart: with allow-all still in force the same request is signed."""
    created = api.create(withdrawal(wallet.name, amount="500", nonce=0))
    request_id = created.json()["id"]
    signer.drain()
    view = api.get(request_id).json()
    assert view["status"] == "signed"
    assert view["result"]["raw_transaction"].startswith("0x02")
