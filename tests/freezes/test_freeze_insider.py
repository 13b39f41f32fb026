"""A database insider lifts no freeze (issue 9): the signer reads the freezes the ledger records.

Each attack edits `freezes` (or `requests`) over a raw connection, as someone with database
access and none to the HSM would: the freeze's `signing.frozen` entry has no `signing.unfrozen`
after it, so it still holds. The signer puts the row back, says what it found in a
`signing.freeze_restored` entry, and the `freeze-records` breaker freezes all signing until
people have looked. On SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import text

from custody.app import create_app
from custody.signing import pipeline
from tests.freezes.conftest import active_freezes, cli_json, statuses, submit, worker
from tests.freezes.test_breakers import DENIALS, ELSEWHERE
from tests.signing.conftest import assert_not_signed
from tests.support.api import Api
from tests.support.installation import Installation
from tests.support.lifecycle import assert_histories_hold


def _raw(inst: Installation, sql: str, **params: Any) -> None:
    """Behind custody's back: a plain connection, no session, no ledger."""
    with inst.runtime.db.engine.begin() as conn:
        conn.execute(text(sql), params)


LIFTED = (
    "UPDATE freezes SET lifted_at = created_at, lifted_by = 'operator', "
    "lift_reason = 'nothing to see' WHERE id = :id"
)
DELETED = "DELETE FROM freezes WHERE id = :id"


@pytest.mark.parametrize(
    ("edit", "found"),
    [
        pytest.param(LIFTED, "its row says it was lifted by operator", id="marked-lifted"),
        pytest.param(DELETED, "its row was deleted", id="deleted"),
    ],
)
def test_a_freeze_lifted_in_the_database_still_holds(
    own: Installation, edit: str, found: str
) -> None:
    wallet = own.wallet()
    signer = worker(own)
    with HttpClient(create_app(own.runtime, run_worker=False)) as http:
        api = Api(http.request, own.client())
        waiting = submit(api, wallet.name)["id"]
        frozen = cli_json(own, "freeze", "--reason", "incident 7: keys under review")
        _raw(own, edit, id=frozen["id"])
        assert active_freezes(own) == []  # the rows say nothing is frozen

        assert signer.drain() == 0
        assert_not_signed(own, api, waiting)
        assert statuses(own, [waiting]) == ["approved"]  # it waits: not the request's fault
        (restored,) = own.ledger_entries("signing.freeze_restored")
        assert restored["data"]["freeze"] == frozen["id"]
        assert restored["data"]["scope"] == "installation"
        assert restored["data"]["reason"] == "incident 7: keys under review"
        assert restored["data"]["found"] == (
            f"freeze {frozen['id']}: {found}, but the ledger records no lift"
        )
        # The row is back as recorded, and the breaker says someone must look.
        rows = active_freezes(own)
        assert [(r.id, r.source) for r in rows] == [
            (frozen["id"], "operator"),
            (rows[1].id, "breaker:freeze-records"),
        ]
        assert rows[0].reason == "incident 7: keys under review"
        breaker = own.ledger_entries("signing.frozen")[-1]["data"]
        assert breaker["source"] == "breaker:freeze-records"
        assert breaker["evidence"]["found"] == [restored["data"]["found"]]
        assert api.get(waiting).json()["waiting"]["freezes"][0]["id"] == frozen["id"]

        # Looked again: nothing more to restore, nothing new in the ledger.
        assert signer.drain() == 0
        assert len(own.ledger_entries("signing.freeze_restored")) == 1
        # Lifted through custody, with its ledger entries: signing resumes.
        lifted = cli_json(own, "unfreeze", "--reason", "reviewed, all clear")
        assert sorted(f["id"] for f in lifted["lifted"]) == [frozen["id"], rows[1].id]
        assert signer.drain() == 1
    assert statuses(own, [waiting]) == ["signed"]
    assert_histories_hold(own, [waiting])


def test_a_wallet_freeze_narrowed_in_the_database_still_holds_its_wallet(
    own: Installation,
) -> None:
    """The insider points a wallet's freeze at another wallet: the ledger names the first."""
    hot, other = own.wallet(), own.wallet()
    signer = worker(own)
    with HttpClient(create_app(own.runtime, run_worker=False)) as http:
        api = Api(http.request, own.client())
        held = submit(api, hot.name)["id"]
        frozen = cli_json(own, "freeze", "--wallet", hot.name, "--reason", "odd withdrawals")
        _raw(
            own,
            "UPDATE freezes SET wallet_id = (SELECT id FROM wallets WHERE name = :other) "
            "WHERE id = :id",
            other=other.name,
            id=frozen["id"],
        )
        assert signer.drain() == 0
        assert_not_signed(own, api, held)
        (restored,) = own.ledger_entries("signing.freeze_restored")
        assert restored["data"]["wallet"] == hot.name
        assert "its row's wallet_id changed" in restored["data"]["found"]
        assert api.get(held).json()["waiting"]["freezes"][0]["wallet"] == hot.name


def test_a_freeze_lifted_in_the_database_while_the_hsm_signs_withholds_the_signature(
    own: Installation,
) -> None:
    """Claimed, signed in the HSM, frozen, and the freeze's row deleted before the signer
    records: the second look (right before release) reads the ledger too."""
    wallet = own.wallet()
    signer = worker(own)
    db = own.runtime.db
    with HttpClient(create_app(own.runtime, run_worker=False)) as http:
        api = Api(http.request, own.client())
        request_id = submit(api, wallet.name)["id"]
        with db.write() as session:
            claim = pipeline.claim_next(
                session,
                worker_id=signer.worker_id,
                lease_seconds=30,
                skip_locked=not db.sqlite,
                configuration=signer.configuration,
                relying_party=own.settings.relying_party,
                max_fee_wei=own.settings.max_tx_fee_wei,
            )
        assert claim is not None
        result = pipeline.sign(own.runtime.token(), claim)
        frozen = cli_json(own, "freeze", "--reason", "came mid-signing")
        _raw(own, DELETED, id=frozen["id"])
        with db.write() as session:
            assert pipeline.finish(session, claim, result, worker_id=signer.worker_id) is False
        view = api.get(request_id).json()
        assert view["status"] == "signing"
        assert "result" not in view
    (withheld,) = own.ledger_entries("signing.withheld")
    assert frozen["id"] in withheld["data"]["freezes"]
    assert own.ledger_entries("signing.freeze_restored")[0]["data"]["freeze"] == frozen["id"]
    assert own.ledger_entries("request.signed") == []


def test_a_new_freeze_never_takes_the_id_of_one_whose_row_was_deleted(
    own: Installation,
) -> None:
    """SQLite hands out a deleted newest row's id again; the ledger still names that freeze."""
    first = cli_json(own, "freeze", "--reason", "first")
    _raw(own, DELETED, id=first["id"])
    second = cli_json(own, "freeze", "--reason", "second")
    assert second["id"] > first["id"]


def test_denials_hidden_in_the_database_still_trip_the_breaker(own: Installation) -> None:
    """The insider rewrites the decision of a client's denied requests (and moves them out of
    the window): the ledger's `request.created` entries still say they were denied."""
    own.apply_policy(DENIALS.format(dead=ELSEWHERE))
    wallet = own.wallet()
    with HttpClient(create_app(own.runtime, run_worker=False)) as http:
        api = Api(http.request, own.client())
        denied = [submit(api, wallet.name, nonce=n, destination=ELSEWHERE) for n in (0, 1)]
        assert [d["status"] for d in denied] == ["rejected", "rejected"]
        for request in denied:
            _raw(
                own,
                "UPDATE requests SET policy_decision = :decision, created_at = :old WHERE id = :id",
                decision='{"decision": "allow", "reason": "fine", "rule": "allow-all"}',
                old="2001-01-01 00:00:00",
                id=request["id"],
            )
        third = submit(api, wallet.name, nonce=2, destination=ELSEWHERE)
        assert third["status"] == "rejected"
    (frozen,) = active_freezes(own)
    assert frozen.source == "breaker:probing"
    (entry,) = own.ledger_entries("signing.frozen")
    assert entry["data"]["evidence"]["denied"] == 3
