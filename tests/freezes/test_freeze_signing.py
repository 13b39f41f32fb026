"""While frozen, no signature is released for the frozen scope; requests wait and are signed once
it is lifted (issue 9 §3). On SQLite and PostgreSQL: the claim query is the signer's."""

from __future__ import annotations

from fastapi.testclient import TestClient as HttpClient

from custody.app import create_app
from custody.freezes import service
from custody.signing import pipeline
from tests.freezes.conftest import active_freezes, cli, cli_json, statuses, submit, worker
from tests.support.api import Api
from tests.support.installation import Installation
from tests.support.lifecycle import assert_histories_hold


def test_a_frozen_installation_signs_nothing_until_unfrozen(own: Installation) -> None:
    first, second = own.wallet(), own.wallet()
    signer = worker(own)
    with HttpClient(create_app(own.runtime, run_worker=False)) as http:
        api = Api(http.request, own.client())
        waiting = [submit(api, first.name)["id"], submit(api, second.name)["id"]]

        frozen = cli_json(own, "freeze", "--reason", "incident 42: keys under review")
        assert frozen["scope"] == "installation"
        assert frozen["new"] is True
        assert signer.drain() == 0
        assert statuses(own, waiting) == ["approved", "approved"]

        # Intake goes on: new requests are accepted and decided, and wait like the others.
        later = submit(api, first.name, nonce=1)
        assert later["status"] == "approved"
        waiting.append(later["id"])
        assert signer.drain() == 0

        view = api.get(waiting[0]).json()
        assert view["status"] == "approved"
        assert view["waiting"]["freezes"] == [
            {
                "id": frozen["id"],
                "scope": "installation",
                "wallet": None,
                "reason": "incident 42: keys under review",
                "since": frozen["created_at"],
            }
        ]
        assert view["waiting"]["reason"].startswith("all signing is frozen")

        lifted = cli_json(own, "unfreeze", "--reason", "reviewed, all clear")
        assert [f["id"] for f in lifted["lifted"]] == [frozen["id"]]
        assert signer.drain() == 3
        assert statuses(own, waiting) == ["signed"] * 3
        assert "waiting" not in api.get(waiting[0]).json()
    kinds = [e["kind"] for e in own.ledger_entries() if e["kind"].startswith("signing.")]
    assert kinds == ["signing.frozen", "signing.unfrozen"]
    unfrozen = own.ledger_entries("signing.unfrozen")[0]["data"]
    assert unfrozen["reason"] == "reviewed, all clear"
    assert unfrozen["frozen_for"] == "incident 42: keys under review"
    assert_histories_hold(own, waiting)


def test_a_wallet_freeze_stops_only_that_wallet(own: Installation) -> None:
    hot, other = own.wallet(), own.wallet()
    signer = worker(own)
    with HttpClient(create_app(own.runtime, run_worker=False)) as http:
        api = Api(http.request, own.client())
        held = submit(api, hot.name)["id"]
        free = submit(api, other.name)["id"]
        cli_json(own, "freeze", "--wallet", hot.name, "--reason", "odd withdrawals")
        assert signer.drain() == 1
        assert statuses(own, [held, free]) == ["approved", "signed"]
        assert api.get(held).json()["waiting"]["freezes"][0]["wallet"] == hot.name
        assert "waiting" not in api.get(free).json()
        listed = cli_json(own, "freezes")
        assert [(f["scope"], f["wallet"]) for f in listed] == [("wallet", hot.name)]

        # Lifting the whole installation's freezes leaves this wallet's alone.
        refused = cli(own, "unfreeze", "--reason", "nothing")
        assert refused.returncode == 1
        assert "all signing is not frozen" in refused.stderr
        cli_json(own, "unfreeze", "--wallet", hot.name, "--reason", "explained")
        assert signer.drain() == 1
    assert statuses(own, [held, free]) == ["signed", "signed"]
    assert_histories_hold(own, [held, free])


def test_a_freeze_that_arrives_while_the_hsm_signs_withholds_the_signature(
    own: Installation,
) -> None:
    """Claim, sign in the HSM, then a freeze commits, then the signer records: no `signed`."""
    wallet = own.wallet()
    signer = worker(own)
    with HttpClient(create_app(own.runtime, run_worker=False)) as http:
        api = Api(http.request, own.client())
        request_id = submit(api, wallet.name)["id"]
        db = own.runtime.db
        with db.write() as session:
            # A lease that runs out at once: after the lift the request is claimed again now.
            claim = pipeline.claim_next(
                session,
                worker_id=signer.worker_id,
                lease_seconds=0,
                skip_locked=not db.sqlite,
                configuration=signer.configuration,
                relying_party=own.settings.relying_party,
                max_fee_wei=own.settings.max_tx_fee_wei,
            )
        assert claim is not None
        result = pipeline.sign(own.runtime.token(), claim)
        assert result["raw_transaction"].startswith("0x02")
        with db.write() as session:
            service.freeze(
                session, wallet_id=None, reason="came mid-signing", actor="test", source="operator"
            )
        with db.write() as session:
            assert pipeline.finish(session, claim, result, worker_id=signer.worker_id) is False
        view = api.get(request_id).json()
        assert view["status"] == "signing"
        assert "result" not in view
        assert view["waiting"]["freezes"][0]["reason"] == "came mid-signing"
        assert signer.drain() == 0  # its lease ran out, but it is frozen: not claimed again

        cli_json(own, "unfreeze", "--reason", "resolved")
        assert signer.drain() == 1
        signed = api.get(request_id).json()
    assert signed["status"] == "signed"
    (frozen,) = own.ledger_entries("signing.frozen")
    withheld = own.ledger_entries("signing.withheld")
    assert [e["data"]["request"] for e in withheld] == [request_id]
    assert withheld[0]["data"]["freezes"] == [frozen["data"]["freeze"]]
    # Never signed while frozen: the one `request.signed` entry comes after the lift.
    entries = own.ledger_entries()
    signed_at = [e["index"] for e in entries if e["kind"] == "request.signed"]
    lifted_at = [e["index"] for e in entries if e["kind"] == "signing.unfrozen"]
    assert len(signed_at) == 1
    assert signed_at[0] > lifted_at[0] > withheld[0]["index"]
    assert_histories_hold(own, [request_id])


def test_a_wallet_freeze_also_withholds_only_its_own_signatures(own: Installation) -> None:
    hot, other = own.wallet(), own.wallet()
    signer = worker(own)
    db = own.runtime.db
    with HttpClient(create_app(own.runtime, run_worker=False)) as http:
        api = Api(http.request, own.client())
        ids = [submit(api, hot.name)["id"], submit(api, other.name)["id"]]
        with db.write() as session:
            claims = [
                pipeline.claim_next(
                    session,
                    worker_id=signer.worker_id,
                    lease_seconds=30,
                    skip_locked=not db.sqlite,
                    configuration=signer.configuration,
                    relying_party=own.settings.relying_party,
                    max_fee_wei=own.settings.max_tx_fee_wei,
                )
                for _ in ids
            ]
        results = [pipeline.sign(own.runtime.token(), c) for c in claims if c is not None]
        cli_json(own, "freeze", "--wallet", hot.name, "--reason", "hot wallet only")
        with db.write() as session:
            done = [
                pipeline.finish(session, c, r, worker_id=signer.worker_id)
                for c, r in zip(claims, results, strict=True)
                if c is not None
            ]
    by_request = dict(zip([c.request_id for c in claims if c is not None], done, strict=True))
    assert by_request == {ids[0]: False, ids[1]: True}
    assert statuses(own, ids) == ["signing", "signed"]
    assert len(active_freezes(own)) == 1
