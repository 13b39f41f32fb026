"""A database insider gets nothing signed (issue 9 §1): the signer believes the client's signed
body, not the request's row.

Each attack edits `requests` directly, as someone with database access and none to the HSM
would, after the client's request was stored: the signer must not sign, and the ledger must say
why.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from custody.intake.decoders import decode
from custody.intake.jsonbody import parse_object
from custody.signing.worker import SignerWorker
from tests.signing.conftest import assert_not_signed
from tests.support.api import Api, withdrawal
from tests.support.installation import Installation, WalletInfo

ETH = 10**18
ATTACKER = "0x000000000000000000000000000000000000dEaD"
SMALL_OR_APPROVED = """
version: 1
rules:
  - id: small
    match: {{type: withdrawal, wallets: [{wallet}], assets: [ETH], amount_lte: "{small}"}}
    action: allow
  - id: large
    match: {{type: withdrawal, wallets: [{wallet}]}}
    action: {{require_approvals: {{count: 2, group: treasury}}}}
  - {{id: allow-all, match: {{type: withdrawal}}, action: allow}}
"""


@pytest.fixture
def guarded(installation: Installation, wallet: WalletInfo) -> Iterator[WalletInfo]:
    installation.apply_policy(SMALL_OR_APPROVED.format(wallet=wallet.name, small=ETH))
    try:
        yield wallet
    finally:
        installation.allow_all_policy()


def _large(api: Api, wallet: WalletInfo) -> dict[str, Any]:
    created = api.create(withdrawal(wallet.name, amount=str(50 * ETH), nonce=0)).json()
    assert created["status"] == "pending_approval", created
    return created


def _insider(installation: Installation, request_id: str, **columns: Any) -> None:
    """UPDATE requests behind custody's back (pending_approval -> approved is a legal move, so
    the status trigger lets it through)."""
    assignments = ", ".join(f"{name} = :{name}" for name in columns)
    with installation.runtime.db.engine.begin() as conn:
        conn.execute(
            text(f"UPDATE requests SET {assignments} WHERE id = :id"), {**columns, "id": request_id}
        )


def _forged(installation: Installation, wallet: WalletInfo, **body: Any) -> Any:
    """What the insider would like signed, built with custody's own decoder."""
    with installation.runtime.db.read() as session:
        return decode(session, parse_object(json.dumps(withdrawal(wallet.name, **body)).encode()))


def _refusals(installation: Installation, request_id: str) -> list[dict[str, Any]]:
    return [
        e["data"]
        for e in installation.ledger_entries()
        if e["data"].get("request") == request_id and e["kind"].startswith("request.")
    ]


def test_harmless_looking_facts_do_not_get_a_large_withdrawal_signed(
    api: Api, guarded: WalletInfo, installation: Installation, signer: SignerWorker
) -> None:
    """The review's principal finding: status `approved` and small `facts` got 50 ETH signed."""
    created = _large(api, guarded)
    harmless = _forged(installation, guarded, amount="1000").facts(api.client.name)
    _insider(installation, created["id"], status="approved", facts=json.dumps(harmless.to_dict()))
    assert signer.drain() == 0
    view = assert_not_signed(installation, api, created["id"])
    # The signer judged the 50 ETH the client signed: approvals are needed, none were given.
    assert view["status"] == "pending_approval"
    last = _refusals(installation, created["id"])[-1]
    assert (last["from"], last["to"]) == ("approved", "pending_approval")
    assert "rule large" in last["reason"]
    assert str(50 * ETH) in last["reason"]  # judged on the amount the client signed


def test_a_swapped_payload_and_digest_are_not_signed(
    api: Api, guarded: WalletInfo, installation: Installation, signer: SignerWorker
) -> None:
    created = _large(api, guarded)
    theft = _forged(installation, guarded, amount=str(50 * ETH), destination=ATTACKER)
    _insider(
        installation,
        created["id"],
        status="approved",
        payload=json.dumps(theft.payload, sort_keys=True),
        digest=theft.digest,
        destination=ATTACKER,
        facts=json.dumps(theft.facts(api.client.name).to_dict()),
    )
    assert signer.drain() == 0
    view = assert_not_signed(installation, api, created["id"])
    assert view["status"] == "failed"
    assert view["reason"].startswith("evidence:")
    assert "digest" in view["reason"]


def test_a_rewritten_client_body_does_not_verify(
    api: Api, guarded: WalletInfo, installation: Installation, signer: SignerWorker
) -> None:
    created = _large(api, guarded)
    body = json.dumps(withdrawal(guarded.name, amount="1000", destination=ATTACKER)).encode()
    theft = _forged(installation, guarded, amount="1000", destination=ATTACKER)
    _insider(
        installation,
        created["id"],
        status="approved",
        client_body=body,
        payload=json.dumps(theft.payload, sort_keys=True),
        digest=theft.digest,
        facts=json.dumps(theft.facts(api.client.name).to_dict()),
    )
    assert signer.drain() == 0
    view = assert_not_signed(installation, api, created["id"])
    assert view["status"] == "failed"
    assert "bodyHash" in view["reason"]


def test_another_wallet_in_the_row_does_not_sign_from_it(
    api: Api, guarded: WalletInfo, installation: Installation, signer: SignerWorker
) -> None:
    """The payload names no sender: signing it with another wallet's key would move that
    wallet's funds. The key comes from the wallet the client named."""
    victim = installation.wallet()
    created = api.create(withdrawal(guarded.name, amount="1000", nonce=5)).json()
    assert created["status"] == "approved"
    with installation.runtime.db.engine.connect() as conn:
        victim_id = conn.execute(
            text("SELECT id FROM wallets WHERE name = :n"), {"n": victim.name}
        ).scalar_one()
    _insider(installation, created["id"], wallet_id=victim_id)
    assert signer.drain() == 0
    view = assert_not_signed(installation, api, created["id"])
    assert view["status"] == "failed"
    assert "wallet" in view["reason"]


def test_a_request_without_its_evidence_is_refused(
    api: Api, guarded: WalletInfo, installation: Installation, signer: SignerWorker
) -> None:
    created = api.create(withdrawal(guarded.name, amount="1000", nonce=3)).json()
    assert created["status"] == "approved"
    _insider(installation, created["id"], client_token=None)
    assert signer.drain() == 0
    view = assert_not_signed(installation, api, created["id"])
    assert view["status"] == "failed"
    assert "no client evidence" in view["reason"]


def test_an_untouched_request_is_signed_from_its_evidence(
    api: Api, guarded: WalletInfo, installation: Installation, signer: SignerWorker
) -> None:
    created = api.create(withdrawal(guarded.name, amount="1000", nonce=4)).json()
    assert created["status"] == "approved"
    assert signer.drain() == 1
    assert api.get(created["id"]).json()["status"] == "signed"
