"""Under `governance`, lifting a freeze needs the governance quorum's device-key signatures."""

from __future__ import annotations

import base64
import json

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import text

from custody.policy import load_policy_text
from custody.policy_versions.service import active_policy, apply
from custody.store.base import utcnow
from tests.freezes.conftest import (
    Admin,
    active_freezes,
    admin,
    cli,
    cli_json,
    statuses,
    submit,
    worker,
)
from tests.support.api import Api
from tests.support.installation import Installation

GOVERNED = """
version: 1
governance: {require_approvals: {count: 2, group: admins}}
rules:
  - {id: allow-all, match: {type: withdrawal}, action: allow}
"""


def governed(home: Installation) -> tuple[Admin, Admin]:
    home.apply_policy(GOVERNED)  # the first version is the operator's
    return admin(home), admin(home)


def pending_lift(home: Installation, reason: str = "all clear") -> tuple[int, int]:
    """`custody unfreeze` under governance: (freeze id, unfreeze id) now waiting."""
    answer = cli_json(home, "unfreeze", "--reason", reason)
    assert answer["lifted"] == []
    (waiting,) = answer["pending"]
    assert waiting["state"] == "pending"
    assert waiting["required_approvals"] == [{"group": "admins", "count": 2}]
    assert waiting["statement"] == {
        "type": "custody.unfreeze.v1",
        "freeze": str(waiting["freeze"]),
        "unfreeze": str(waiting["id"]),
    }
    return waiting["freeze"], waiting["id"]


def test_one_signature_is_not_enough_two_are(http: HttpClient, home: Installation) -> None:
    # the wallet and client come first: once the governance is staffed, new ones would wait
    # for its quorum too (tests/seals/test_configuration_governance.py)
    wallet, client = home.wallet(), home.client()
    first, second = governed(home)
    request_id = submit(Api(http.request, client), wallet.name)["id"]
    cli_json(home, "freeze", "--reason", "suspicious activity")

    human = cli(home, "unfreeze", "--reason", "investigated")
    assert human.returncode == 0, human.stderr
    assert "waits for the governance quorum (2 from admins)" in human.stdout
    assert '"type": "custody.unfreeze.v1"' in human.stdout
    assert "POST /v1/freezes/1/approvals" in human.stdout
    freeze, unfreeze = pending_lift(home)  # asking again shows the same pending lift
    assert len(home.ledger_entries("signing.unfreeze_requested")) == 1

    one = first.decide(http, freeze, unfreeze)
    assert one.status_code == 200, one.text
    assert one.json()["lifted"] is False
    assert one.json()["quorum"]["received"] == {"admins": [first.name]}
    assert len(active_freezes(home)) == 1
    assert worker(home).drain() == 0

    assert first.decide(http, freeze, unfreeze).status_code == 409  # counts once
    two = second.decide(http, freeze, unfreeze)
    assert two.status_code == 200, two.text
    assert two.json() == {
        "freeze": freeze,
        "unfreeze": unfreeze,
        "state": "applied",
        "lifted": True,
        "quorum": {
            "required": [{"group": "admins", "count": 2}],
            "received": {"admins": [first.name, second.name]},
            "met": True,
        },
    }
    assert active_freezes(home) == []
    assert worker(home).drain() == 1
    assert statuses(home, [request_id]) == ["signed"]
    (lifted,) = home.ledger_entries("signing.unfrozen")
    assert lifted["actor"] == "approvals"
    assert lifted["data"]["approved_by"] == {"admins": [first.name, second.name]}
    assert lifted["data"]["reason"] == "investigated"


def test_refused_decisions_record_nothing(http: HttpClient, home: Installation) -> None:
    first, _ = governed(home)
    outsider = admin(home, group="treasury")
    cli_json(home, "freeze", "--reason", "incident")
    freeze, unfreeze = pending_lift(home)
    before = home.counts()

    forged = first.decide(http, freeze, unfreeze, key=Ed25519PrivateKey.generate())
    assert forged.status_code == 401
    assert "does not verify" in forged.json()["detail"]
    # Signed for another freeze or another attempt: a statement binds both ids.
    assert first.decide(http, freeze, unfreeze + 1).status_code == 401
    assert outsider.decide(http, freeze, unfreeze).status_code == 403
    assert Admin("nobody", first.key).decide(http, freeze, unfreeze).status_code == 403
    assert first.decide(http, freeze + 7, unfreeze).status_code == 404
    bad = http.post(
        f"/v1/freezes/{freeze}/approvals", content=json.dumps({"approver": first.name}).encode()
    )
    assert bad.status_code == 422
    assert home.counts() == before
    assert len(active_freezes(home)) == 1


def test_a_rejection_ends_the_attempt_and_its_signatures_stay_with_it(
    http: HttpClient, home: Installation
) -> None:
    first, second = governed(home)
    cli_json(home, "freeze", "--reason", "incident")
    freeze, old = pending_lift(home)
    assert first.decide(http, freeze, old).status_code == 200
    rejected = second.decide(http, freeze, old, "reject")
    assert rejected.json()["state"] == "rejected"
    assert rejected.json()["lifted"] is False
    assert len(active_freezes(home)) == 1

    again, new = pending_lift(home, "second try")
    assert (again, new != old) == (freeze, True)
    # first's approval of the rejected attempt cannot be replayed for the new one.
    replay = http.post(f"/v1/freezes/{freeze}/approvals", content=first.body(freeze, old, key=None))
    assert replay.status_code == 401
    assert second.decide(http, freeze, new).status_code == 200
    assert len(active_freezes(home)) == 1  # one approval of the new attempt so far
    assert first.decide(http, freeze, new).json()["lifted"] is True


def test_an_approval_row_an_insider_adds_counts_for_nothing(
    http: HttpClient, home: Installation
) -> None:
    first, second = governed(home)
    cli_json(home, "freeze", "--reason", "incident")
    freeze, unfreeze = pending_lift(home)
    second_id = approver_id(home, second.name)
    statement = json.dumps(
        {
            "approver": second.name,
            "decision": "approve",
            "freeze": str(freeze),
            "type": "custody.unfreeze.v1",
            "unfreeze": str(unfreeze),
        },
        separators=(",", ":"),
    ).encode()
    with home.runtime.db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO unfreeze_approvals (unfreeze_id, approver_id, decision, statement, "
                "evidence, created_at) VALUES (:u, :a, 'approve', :s, :e, :t)"
            ),
            {
                "u": unfreeze,
                "a": second_id,
                "s": statement,
                "e": json.dumps({"signature": "AAAA"}),
                "t": utcnow(),
            },
        )
    answer = first.decide(http, freeze, unfreeze)
    assert answer.status_code == 200
    assert answer.json()["lifted"] is False
    assert answer.json()["quorum"]["received"] == {"admins": [first.name]}
    assert len(active_freezes(home)) == 1


def test_without_governance_any_more_the_pending_lift_gives_way(
    http: HttpClient, home: Installation
) -> None:
    first, second = governed(home)
    cli_json(home, "freeze", "--reason", "incident")
    freeze, unfreeze = pending_lift(home)
    ungoverned(http, home, first, second)
    assert first.decide(http, freeze, unfreeze).status_code == 409
    lifted = cli_json(home, "unfreeze", "--reason", "no governance: at once")
    assert [f["id"] for f in lifted["lifted"]] == [freeze]
    (entry,) = home.ledger_entries("signing.unfrozen")
    assert entry["data"]["superseded_unfreeze"] == unfreeze
    assert first.decide(http, freeze, unfreeze).status_code == 409


def ungoverned(http: HttpClient, home: Installation, *admins: Admin) -> None:
    """The governance quorum approves a policy without governance."""
    loaded = load_policy_text(
        "version: 1\nrules:\n  - {id: allow-all, match: {type: withdrawal}, action: allow}\n",
        "plain.yaml",
    )
    with home.runtime.db.write() as session:
        version = apply(session, loaded, source_name="plain.yaml", actor="test")
        assert version.state == "proposed"
        version_id = version.id
    for who in admins:
        statement = rfc8785.dumps(
            {
                "type": "custody.policy_approval.v1",
                "version": str(version_id),
                "policy_digest": loaded.digest,
                "decision": "approve",
                "approver": who.name,
            }
        )
        body = {
            "approver": who.name,
            "decision": "approve",
            "signature": base64.b64encode(who.key.sign(bytes(statement))).decode(),
        }
        answer = http.post(
            f"/v1/policy/proposals/{version_id}/approvals", content=json.dumps(body).encode()
        )
        assert answer.status_code == 200, answer.text
    with home.runtime.db.read() as session:
        active = active_policy(session)
        assert active is not None
        assert active.digest == loaded.digest


def approver_id(home: Installation, name: str) -> str:
    with home.runtime.db.engine.connect() as conn:
        found = conn.execute(text("SELECT id FROM approvers WHERE name = :n"), {"n": name})
        return str(found.scalar_one())
