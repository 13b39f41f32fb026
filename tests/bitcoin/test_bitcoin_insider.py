"""A database insider gets no Bitcoin signature: the signer re-parses the PSBT the client signed,
recomputes the BIP-143 sighashes and the facts, and believes no column of `requests`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import text

from custody.app import create_app
from custody.intake.decoders import decode
from custody.intake.jsonbody import parse_object
from custody.signing.worker import SignerWorker
from tests.bitcoin.bitcoin_support import BitcoinWallet, bitcoin_wallet, body, funding_psbt
from tests.signing.conftest import assert_not_signed
from tests.support.api import Api
from tests.support.installation import Installation

THIEF = "bcrt1qyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zs4w3j0"
APPROVALS_ABOVE = """
version: 1
rules:
  - id: small-btc
    match: {type: bitcoin_psbt, assets: [BTC], amount_lte: "100000"}
    action: allow
  - id: large-btc
    match: {type: bitcoin_psbt}
    action: {require_approvals: {count: 2, group: treasury}}
  - {id: allow-withdrawals, match: {type: withdrawal}, action: allow}
"""


@pytest.fixture
def guarded(installation: Installation) -> Any:
    installation.apply_policy(APPROVALS_ABOVE)
    try:
        yield bitcoin_wallet(installation)
    finally:
        installation.allow_all_policy()


def _insider(installation: Installation, request_id: str, **columns: Any) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in columns)
    with installation.runtime.db.engine.begin() as conn:
        conn.execute(
            text(f"UPDATE requests SET {assignments} WHERE id = :id"), {**columns, "id": request_id}
        )


def _large(api: Api, wallet: BitcoinWallet) -> dict[str, Any]:
    psbt = funding_psbt(wallet, inputs=(1_000_000,), send=900_000, change=99_000)
    created = api.create(body(wallet, psbt)).json()
    assert created["status"] == "pending_approval", created
    return created


def test_small_facts_in_the_row_do_not_get_a_large_psbt_signed(
    api: Api, guarded: BitcoinWallet, installation: Installation, signer: SignerWorker
) -> None:
    created = _large(api, guarded)
    small = funding_psbt(guarded, inputs=(1_000_000,), send=1_000, change=989_000)
    with installation.runtime.db.read() as session:
        harmless = decode(session, parse_object(json.dumps(body(guarded, small)).encode()))
    _insider(
        installation,
        created["id"],
        status="approved",
        facts=json.dumps(harmless.facts(api.client.name).to_dict()),
    )
    assert signer.drain() == 0
    view = assert_not_signed(installation, api, created["id"])
    # Judged on the 900,000 sats the client's PSBT sends: approvals needed, none given.
    assert view["status"] == "pending_approval"


def test_a_swapped_psbt_and_digest_are_not_signed(
    api: Api, guarded: BitcoinWallet, installation: Installation, signer: SignerWorker
) -> None:
    created = _large(api, guarded)
    theft = funding_psbt(guarded, inputs=(1_000_000,), send=999_000, to=THIEF, change=None)
    with installation.runtime.db.read() as session:
        forged = decode(session, parse_object(json.dumps(body(guarded, theft)).encode()))
    _insider(
        installation,
        created["id"],
        status="approved",
        payload=json.dumps(forged.payload, sort_keys=True),
        digest=forged.digest,
        destination=THIEF,
        facts=json.dumps(forged.facts(api.client.name).to_dict()),
    )
    assert signer.drain() == 0
    view = assert_not_signed(installation, api, created["id"])
    assert view["status"] == "failed"
    assert view["reason"].startswith("evidence:")


def test_an_edited_psbt_in_the_payload_alone_is_not_signed(
    api: Api, guarded: BitcoinWallet, installation: Installation, signer: SignerWorker
) -> None:
    """The digest left as approved, only the stored PSBT swapped: the signer's own sighashes
    no longer give the approved digest."""
    created = _large(api, guarded)
    theft = funding_psbt(guarded, inputs=(1_000_000,), send=999_000, to=THIEF, change=None)
    with installation.runtime.db.read() as session:
        stored = json.loads(
            session.execute(
                text("SELECT payload FROM requests WHERE id = :id"), {"id": created["id"]}
            ).scalar_one()
        )
    stored["psbt"] = theft.to_base64()
    _insider(installation, created["id"], status="approved", payload=json.dumps(stored))
    assert signer.drain() == 0
    view = assert_not_signed(installation, api, created["id"])
    assert view["status"] == "failed"
    assert "digest" in view["reason"] or "payload" in view["reason"]


def test_an_edited_descriptor_is_caught_by_the_configuration_seal(
    fresh_installation: Installation,
) -> None:
    """The descriptor decides which script a PSBT must spend: it is sealed with the wallet, and
    a row edited behind custody's back freezes signing (on an installation of its own)."""
    inst = fresh_installation
    inst.apply_policy(
        "version: 1\nrules:\n  - {id: btc, match: {type: bitcoin_psbt}, action: allow}\n"
    )
    wallet = bitcoin_wallet(inst)
    other = bitcoin_wallet(inst)
    with HttpClient(create_app(inst.runtime, run_worker=False)) as http:
        client = Api(http.request, inst.client())
        created = client.create(body(wallet, funding_psbt(wallet))).json()
        assert created["status"] == "approved"
        with inst.runtime.db.engine.begin() as conn:
            conn.execute(
                text("UPDATE wallets SET descriptor = :d WHERE name = :n"),
                {"d": other.descriptor, "n": wallet.name},
            )
        assert SignerWorker(inst.runtime, worker_id="test-worker").drain() == 0
        assert client.get(created["id"]).json()["status"] == "approved"  # waits, unsigned
    refused = [e["data"]["reason"] for e in inst.ledger_entries("configuration.refused")]
    assert refused
    assert "wallets" in refused[-1]
