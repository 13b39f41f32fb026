"""Intake decodes before its write transaction (issue 9, EIP-712 CPU): an expensive body stalls
no other writer. On SQLite the write transaction holds the database's only write lock, so a
decode inside it would stop every other writer for as long as it runs.

The decoders are wrapped to look, while they run, at the installation's `Database`: no write
transaction of it may be open, and (SQLite) another connection must be able to take the write
lock at once (`BEGIN IMMEDIATE` with no busy timeout). What the decode read from the catalog is
checked again in the write transaction: a change in between is decoded again, not stored stale.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy.orm import Session

from custody.approvals.approvers import add_approver, hash_token
from custody.catalog.assets import add_asset
from custody.intake.decoders import DECODERS, Decoder
from custody.intake.draft import Draft
from custody.intake.evmfill import EvmFill
from custody.intake.lookups import Lookups
from custody.store.database import sqlite_file
from custody.store.models import Request, WebSession
from custody.web import sessions
from tests.intake.intake_support import random_address, transfer
from tests.intake.trade_support import Tokens, order, trade, venue
from tests.support.api import DESTINATION, Api, withdrawal
from tests.support.installation import Installation, WalletInfo


@dataclass
class Watch:
    """Open write transactions of the installation's Database, and what each decode saw."""

    installation: Installation
    open_writes: int = 0
    seen: list[tuple[str, int, bool | None]] = field(default_factory=list)
    """(request type, write transactions open, whether another writer could lock) per decode."""

    def lock_is_free(self) -> bool | None:
        path = sqlite_file(self.installation.runtime.db.url)
        if path is None:
            return None  # PostgreSQL: no database-wide write lock to probe
        probe = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            probe.close()


@pytest.fixture
def watch(installation: Installation, monkeypatch: pytest.MonkeyPatch) -> Watch:
    watch = Watch(installation)
    db = installation.runtime.db
    original_write = db.write

    @contextmanager
    def counted_write() -> Iterator[Session]:
        with original_write() as session:
            watch.open_writes += 1
            try:
                yield session
            finally:
                watch.open_writes -= 1

    monkeypatch.setattr(db, "write", counted_write)
    for request_type, decoder in list(DECODERS.items()):
        monkeypatch.setitem(DECODERS, request_type, _watched(watch, request_type, decoder))
    return watch


def _watched(watch: Watch, request_type: str, decoder: Decoder) -> Decoder:
    def decode(lookups: Lookups, data: dict[str, Any], fill: EvmFill | None) -> Draft:
        watch.seen.append((request_type, watch.open_writes, watch.lock_is_free()))
        return decoder(lookups, data, fill)

    return decode


def _unlocked(installation: Installation) -> bool | None:
    return True if installation.backend == "sqlite" else None


def test_a_withdrawal_is_decoded_with_no_write_transaction_open(
    api: Api, wallet: WalletInfo, installation: Installation, watch: Watch
) -> None:
    created = api.create(withdrawal(wallet.name))
    assert created.status_code == 201, created.text
    assert watch.seen == [("withdrawal", 0, _unlocked(installation))]


def test_a_trade_is_decoded_and_hashed_with_no_write_transaction_open(
    api: Api, wallet: WalletInfo, installation: Installation, watch: Watch
) -> None:
    tokens = Tokens(installation)
    name, contract = venue(installation)
    typed = order(
        contract, sell_token=tokens.usdc, buy_token=tokens.weth, sell_amount=10, buy_amount=10
    )
    created = api.create(trade(wallet.name, name, typed))
    assert created.status_code == 201, created.text
    assert watch.seen == [("trade", 0, _unlocked(installation))]


def test_replays_and_conflicts_answer_without_decoding(
    api: Api, wallet: WalletInfo, watch: Watch
) -> None:
    key = str(uuid.uuid4())
    first = api.create(withdrawal(wallet.name, nonce=3), key=key)
    assert first.status_code == 201
    again = api.create(withdrawal(wallet.name, nonce=3), key=key)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert api.create(withdrawal(wallet.name, nonce=4), key=key).status_code == 409
    assert api.create(b"not json at all", key=key).status_code == 409
    assert len(watch.seen) == 1  # only the first call decoded


def test_a_catalog_change_during_the_decode_is_caught_and_decoded_again(
    api: Api, wallet: WalletInfo, installation: Installation, watch: Watch
) -> None:
    """The allow-all policy allows withdrawals only: a transfer of an unregistered token is a
    contract call (denied), of a registered one a withdrawal of it (allowed)."""
    contract = random_address()
    real = DECODERS["contract_call"]

    def registering_meanwhile(
        lookups: Lookups, data: dict[str, Any], fill: EvmFill | None
    ) -> Draft:
        draft = real(lookups, data, fill)
        if len(watch.seen) == 1:
            # An operator registers the token while the first decode runs: possible only because
            # the decode holds no write lock (this write would wait for it otherwise).
            with installation.runtime.db.write() as session:
                add_asset(
                    session,
                    symbol="T" + secrets.token_hex(4).upper(),
                    chain_name="ethereum",
                    contract=contract,
                    decimals=6,
                    actor="test",
                )
        return draft

    DECODERS["contract_call"] = registering_meanwhile  # restored by the watch's monkeypatch
    body = {
        "type": "contract_call",
        "wallet": wallet.name,
        "to": contract,
        "data": transfer(DESTINATION, 5_000_000),
        "value": "0",
        "evm": {
            "nonce": 0,
            "gas": 65000,
            "max_fee_per_gas": "30000000000",
            "max_priority_fee_per_gas": "1000000000",
        },
    }
    created = api.create(body)
    assert created.status_code == 201, created.text
    assert len(watch.seen) == 2  # decoded again against the changed catalog
    assert created.json()["status"] == "approved"  # judged as a withdrawal of the token
    with installation.runtime.db.read() as session:
        stored = session.get(Request, created.json()["id"])
        assert stored is not None
        assert json.loads(stored.facts)["type"] == "withdrawal"


def test_the_makers_form_is_decoded_with_no_write_transaction_open(
    http: HttpClient, wallet: WalletInfo, installation: Installation, watch: Watch
) -> None:
    group = installation.grant_maker(f"makers-{secrets.token_hex(4)}")
    with installation.runtime.db.write() as session:
        approver = add_approver(
            session,
            name=f"maker-{secrets.token_hex(4)}",
            groups=[group],
            device_key_pem=None,
            actor="test",
        )
        cookie = sessions.start(session, approver_id=approver.id, minutes=30)
        session.flush()
        row = session.get(WebSession, hash_token(cookie))
        assert row is not None
        csrf = row.csrf_token
    form = {
        "csrf_token": csrf,
        "form_key": secrets.token_urlsafe(16),
        "wallet": wallet.name,
        "destination": DESTINATION,
        "amount": "0.001",
        "nonce": "0",
        "gas": "21000",
        "max_fee_gwei": "30",
        "priority_fee_gwei": "1",
    }
    headers = {
        "Cookie": f"{sessions.COOKIE_NAME}={cookie}",
        "Origin": installation.settings.public_url,
    }
    posted = http.post("/app/new", data=form, headers=headers, follow_redirects=False)
    assert posted.status_code == 303, posted.text
    assert watch.seen == [("withdrawal", 0, _unlocked(installation))]
    again = http.post("/app/new", data=form, headers=headers, follow_redirects=False)
    assert again.headers["location"] == posted.headers["location"]  # the same request
    assert len(watch.seen) == 1
