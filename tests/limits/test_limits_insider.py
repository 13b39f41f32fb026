"""A database insider frees no room under a limit (issue 9 §1): the signer's limit re-check counts
other requests from their own client evidence and from the ledger, not from their rows.

Each attack edits `requests` over a raw connection after the earlier request was signed, as
someone with database access and none to the HSM would; intake still counts the rows (it signs
nothing), so the over-limit request reaches the signer approved, and the signer must not sign it.
Every test has an installation of its own (SQLite and PostgreSQL): a counted request whose
evidence does not hold freezes signing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import select, text

from custody.app import create_app
from custody.approvals.approvers import add_approver, hash_token
from custody.freezes import gate
from custody.freezes import service as freezes
from custody.intake.decoders import decode
from custody.intake.jsonbody import parse_object
from custody.signing import evidence, pipeline
from custody.signing.worker import SignerWorker
from custody.store.models import Freeze, WebSession
from custody.web import sessions
from tests.limits.test_limits import UNIT, limit_policy
from tests.signing.conftest import assert_not_signed
from tests.support.api import DESTINATION, Api, withdrawal
from tests.support.cli import invoke, ok_json
from tests.support.installation import Installation, WalletInfo


@pytest.fixture
def setup(fresh_installation: Installation) -> Iterator[tuple[Installation, Api, WalletInfo]]:
    inst = fresh_installation
    wallet = inst.wallet()
    inst.apply_policy(limit_policy(wallet.name, max_amount=10 * UNIT))
    with HttpClient(create_app(inst.runtime, run_worker=False)) as http:
        yield inst, Api(http.request, inst.client()), wallet


def _signer(inst: Installation) -> SignerWorker:
    return SignerWorker(inst.runtime, worker_id="limits-insider")


def _raw(inst: Installation, sql: str, **params: Any) -> None:
    """Behind custody's back: a plain connection, no session, no lifecycle."""
    with inst.runtime.db.engine.begin() as conn:
        conn.execute(text(sql), params)


def _signed(inst: Installation, api: Api, wallet: WalletInfo, amount: int, nonce: int) -> str:
    created = api.create(withdrawal(wallet.name, amount=str(amount), nonce=nonce)).json()
    assert created["status"] == "approved", created
    assert _signer(inst).drain() == 1
    assert api.get(created["id"]).json()["status"] == "signed"
    return str(created["id"])


def _facts_of(inst: Installation, api: Api, wallet: WalletInfo, amount: int) -> str:
    """The `facts` column a request of `amount` would have: what the insider writes in."""
    body = json.dumps(withdrawal(wallet.name, amount=str(amount))).encode()
    with inst.runtime.db.read() as session:
        draft = decode(session, parse_object(body))
    return json.dumps(draft.facts(api.client.name).to_dict())


def _over_limit(api: Api, wallet: WalletInfo) -> str:
    """6 more units: intake counts the edited rows (room for it), the evidence says 6 + 6 > 10."""
    created = api.create(withdrawal(wallet.name, amount=str(6 * UNIT), nonce=1)).json()
    assert created["status"] == "approved", created  # intake believed the rows
    return str(created["id"])


def _rejected_by_the_limit(inst: Installation, api: Api, request_id: str) -> None:
    assert _signer(inst).drain() == 0
    view = assert_not_signed(inst, api, request_id)
    assert view["status"] == "rejected"
    rechecked = [
        e["data"]
        for e in inst.ledger_entries("policy.rechecked")
        if e["data"]["request"] == request_id
    ]
    assert rechecked[-1]["allowed"] is False
    assert rechecked[-1]["result"]["rule"] == "limit:cap"
    # judged on the 6 units the first request's client signed, not the row's 1
    assert f"{6 * UNIT} + {6 * UNIT}" in rechecked[-1]["result"]["reason"]


def test_a_lowered_amount_and_facts_free_no_room(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    inst, api, wallet = setup
    first = _signed(inst, api, wallet, 6 * UNIT, nonce=0)
    _raw(
        inst,
        "UPDATE requests SET amount = :amount, facts = :facts WHERE id = :id",
        amount=str(UNIT),
        facts=_facts_of(inst, api, wallet, UNIT),
        id=first,
    )
    _rejected_by_the_limit(inst, api, _over_limit(api, wallet))


def test_another_asset_in_the_row_frees_no_room(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    """The limit's scope is judged on the facts the evidence yields, not on `requests.asset`."""
    inst, api, wallet = setup
    first = _signed(inst, api, wallet, 6 * UNIT, nonce=0)
    _raw(inst, "UPDATE requests SET asset = 'USDC' WHERE id = :id", id=first)
    _rejected_by_the_limit(inst, api, _over_limit(api, wallet))


def test_a_signed_request_marked_failed_still_counts(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    """signed -> failed is a move the status trigger allows (a broadcast that failed); with
    `signed_at` cleared no row says it was signed. The ledger's `request.signed` entry does."""
    inst, api, wallet = setup
    first = _signed(inst, api, wallet, 6 * UNIT, nonce=0)
    _raw(inst, "UPDATE requests SET status = 'failed', signed_at = NULL WHERE id = :id", id=first)
    _rejected_by_the_limit(inst, api, _over_limit(api, wallet))


def _active_freezes(inst: Installation) -> list[Freeze]:
    with inst.runtime.db.read() as session:
        query = select(Freeze).where(Freeze.lifted_at.is_(None)).order_by(Freeze.id)
        return list(session.execute(query).scalars())


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(("client_body", "rewritten"), id="rewritten-body"),
        pytest.param(("client_token", None), id="deleted-token"),
        pytest.param(("client_body", None), id="no-evidence"),
    ],
)
def test_a_counted_request_without_evidence_stops_signing(
    setup: tuple[Installation, Api, WalletInfo], edit: tuple[str, str | None]
) -> None:
    """Its amount cannot be known: counting it as zero (or believing its row) would free the
    room the insider wanted. Nothing is signed, the request waits, and the ledger says why."""
    inst, api, wallet = setup
    first = _signed(inst, api, wallet, 6 * UNIT, nonce=0)
    column, value = edit
    body = json.dumps(withdrawal(wallet.name, amount=str(UNIT), nonce=0)).encode()
    _raw(
        inst,
        f"UPDATE requests SET {column} = :value, amount = :amount WHERE id = :id",
        value=body if value == "rewritten" else None,
        amount=str(UNIT),
        id=first,
    )
    # Even a request that fits by any count waits: the limit cannot be judged.
    small = api.create(withdrawal(wallet.name, amount="1", nonce=1)).json()
    assert small["status"] == "approved", small
    assert _signer(inst).drain() == 0
    view = assert_not_signed(inst, api, small["id"])
    assert view["status"] == "approved"  # waiting, not failed: the insider's edit is not its fault
    (frozen,) = _active_freezes(inst)
    assert frozen.wallet_id is None
    assert frozen.source == "breaker:limit-evidence"
    entry = inst.ledger_entries("signing.frozen")[-1]["data"]
    assert entry["source"] == "breaker:limit-evidence"
    evidence = entry["evidence"]
    assert (evidence["limit"], evidence["counted"], evidence["request"]) == (
        "cap",
        first,
        small["id"],
    )
    expected = "bodyHash" if value == "rewritten" else "no client evidence"
    assert expected in evidence["detail"]
    # Lifting without restoring the evidence freezes again at the next claim: still nothing.
    with inst.runtime.db.write() as session:
        row = session.get(Freeze, frozen.id)
        assert row is not None
        freezes.lift(session, row, by="operator", reason="looked")
    assert _signer(inst).drain() == 0
    assert len(_active_freezes(inst)) == 1
    assert api.get(small["id"]).json()["status"] == "approved"


def test_untouched_requests_sign_within_the_limit_and_not_over_it(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    """The normal path, counted from the evidence: what fits is signed, and a request that the
    signer finds over the limit (tightened after its approval) is not."""
    inst, api, wallet = setup
    _signed(inst, api, wallet, 6 * UNIT, nonce=0)
    _signed(inst, api, wallet, 4 * UNIT, nonce=1)  # 6 + 4 = 10: exactly fits
    refused = api.create(withdrawal(wallet.name, amount="1", nonce=2)).json()
    assert refused["status"] == "rejected"
    inst.apply_policy(limit_policy(wallet.name, max_amount=12 * UNIT))
    late = api.create(withdrawal(wallet.name, amount=str(2 * UNIT), nonce=3)).json()
    assert late["status"] == "approved"
    inst.apply_policy(limit_policy(wallet.name, max_amount=11 * UNIT))
    assert _signer(inst).drain() == 0
    view = api.get(late["id"]).json()
    assert view["status"] == "rejected"
    assert f"{10 * UNIT} + {2 * UNIT}" in view["reason"]
    assert not _active_freezes(inst)


@pytest.fixture
def maker_app(
    setup: tuple[Installation, Api, WalletInfo],
) -> Iterator[tuple[HttpClient, dict[str, Any]]]:
    """The approver app and a signed-in approver with the maker permission."""
    inst = setup[0]
    with inst.runtime.db.write() as session:
        approver = add_approver(
            session, name="maker", groups=["makers"], device_key_pem=None, actor="test"
        )
        cookie = sessions.start(session, approver_id=approver.id, minutes=30)
        session.flush()
        row = session.get(WebSession, hash_token(cookie))
        assert row is not None
        csrf = row.csrf_token
    ok_json(invoke(["approvers", "grant", "makers", "maker", "--json"], inst.env))
    with HttpClient(create_app(inst.runtime, run_worker=False)) as app:
        app.headers["Origin"] = inst.settings.public_url
        yield app, {"csrf": csrf, "cookie": {"Cookie": f"{sessions.COOKIE_NAME}={cookie}"}}


def test_an_approver_app_request_counts_from_the_apps_token(
    setup: tuple[Installation, Api, WalletInfo], maker_app: tuple[HttpClient, dict[str, Any]]
) -> None:
    """A withdrawal a person started in the approver app is evidence too: its token is signed
    by the app's key in the HSM. Its lowered row frees no room either."""
    inst, api, wallet = setup
    milli = 10**15  # the form's 0.001 ETH
    inst.apply_policy(limit_policy(wallet.name, max_amount=milli + milli // 2))
    app, maker = maker_app
    form = {
        "csrf_token": maker["csrf"],
        "form_key": "limits-insider",
        "wallet": wallet.name,
        "destination": DESTINATION,
        "amount": "0.001",
        "nonce": "0",
        "gas": "21000",
        "max_fee_gwei": "30",
        "priority_fee_gwei": "1",
    }
    answer = app.post("/app/new", data=form, headers=maker["cookie"], follow_redirects=False)
    assert answer.status_code == 303, answer.text
    made = answer.headers["location"].rsplit("/", 1)[-1]
    assert _signer(inst).drain() == 1
    _raw(
        inst,
        "UPDATE requests SET amount = '1', facts = :facts WHERE id = :id",
        facts=_facts_of(inst, api, wallet, 1),
        id=made,
    )
    over = api.create(withdrawal(wallet.name, amount=str(milli), nonce=1)).json()
    assert over["status"] == "approved", over  # intake believed the row's 1
    assert _signer(inst).drain() == 0
    view = assert_not_signed(inst, api, over["id"])
    assert view["status"] == "rejected"
    assert f"{milli} + {milli}" in view["reason"]


def test_each_counted_request_is_verified_once_per_signer_process(
    setup: tuple[Installation, Api, WalletInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counting from evidence must not cost a verification per request per claim: a starting
    signer verifies what its limits count before its first claim (outside the ledger lock), a
    claim remembers its own request's, and later claims verify nothing again."""
    inst, api, wallet = setup
    earlier = [
        api.create(withdrawal(wallet.name, amount="1", nonce=n)).json()["id"] for n in range(4)
    ]
    assert _signer(inst).drain() == 4
    verified: list[str] = []
    real = evidence.verify_stored_call

    def counting(pem: str, token: str, **call: Any) -> dict[str, Any]:
        verified.append(token)
        return real(pem, token, **call)

    monkeypatch.setattr(evidence, "verify_stored_call", counting)
    monkeypatch.setattr(evidence, "_believed", {})  # a signer process of its own
    later = [
        api.create(withdrawal(wallet.name, amount="1", nonce=n)).json()["id"] for n in range(4, 7)
    ]
    assert _signer(inst).drain() == 3
    tokens = {request_id: _token(inst, request_id) for request_id in earlier + later}
    # the earlier four, counted by all three claims: verified once, before the first claim
    assert [verified.count(tokens[r]) for r in earlier] == [1, 1, 1, 1]
    # the later three: once when verified ahead, once by their own claim (which checks the row
    # as it is then), never by the claims that count them
    assert [verified.count(tokens[r]) for r in later] == [2, 2, 2]


def _token(inst: Installation, request_id: str) -> str:
    with inst.runtime.db.engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT client_token FROM requests WHERE id = :id"), {"id": request_id}
            ).scalar_one()
        )


def test_a_claimed_request_marked_failed_still_counts(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    """A worker claimed the first request and is signing it (here: claimed and not yet signed);
    the insider marks its row `failed` (signing -> failed is a legal move) so that a second
    worker, or the next batch, finds room for another. The ledger's `request.signing` entry with
    no outcome after it says the first is still in flight: the second is not signed."""
    inst, api, wallet = setup
    first = api.create(withdrawal(wallet.name, amount=str(6 * UNIT), nonce=0)).json()
    assert first["status"] == "approved"
    stalled, settings = _signer(inst), inst.runtime.settings
    with inst.runtime.db.write() as session:
        claim = pipeline.claim_next(
            session,
            worker_id=stalled.worker_id,
            lease_seconds=300,
            skip_locked=not inst.runtime.db.sqlite,
            configuration=stalled.configuration,
            relying_party=settings.relying_party,
            max_fee_wei=settings.max_tx_fee_wei,
        )
    assert claim is not None
    assert claim.request_id == first["id"]
    _raw(inst, "UPDATE requests SET status = 'failed' WHERE id = :id", id=first["id"])
    _rejected_by_the_limit(inst, api, _over_limit(api, wallet))


def test_a_rotated_client_key_still_lets_a_new_signer_count_its_earlier_requests(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    """After `clients rotate-key`, a signer that never saw the old key (a restart: nothing
    remembered) verifies the earlier request with the key of its day, from the ledger's
    `client.key_rotated` entry: it neither freezes nor forgets the 6 units."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from custody.clients.service import rotate_key
    from tests.support.installation import ClientKeys

    inst, api, wallet = setup
    _signed(inst, api, wallet, 6 * UNIT, nonce=0)
    new_key = Ed25519PrivateKey.generate()
    pem = new_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with inst.runtime.db.write() as session:
        rotate_key(session, name=api.client.name, public_key_pem=pem, actor="test")
    api.client = ClientKeys(api.client.id, api.client.name, new_key)
    with evidence._believed_lock:
        evidence._believed.clear()  # a signer process started after the rotation
    within = api.create(withdrawal(wallet.name, amount=str(3 * UNIT), nonce=1)).json()
    assert within["status"] == "approved", within
    assert _signer(inst).drain() == 1
    assert api.get(within["id"]).json()["status"] == "signed"
    with inst.runtime.db.read() as session:
        assert gate.hold(session).everything is False
    over = api.create(withdrawal(wallet.name, amount=str(2 * UNIT), nonce=2)).json()
    assert over["status"] in ("approved", "rejected"), over
    if over["status"] == "approved":  # intake counts rows; the signer counts 6 + 3 + 2 > 10
        assert _signer(inst).drain() == 0
        assert api.get(over["id"]).json()["status"] == "rejected"


def _approvals_above(wallet: str, units: int) -> str:
    """The cap, and approvals for anything above `units` units: such a request waits."""
    return f"""
version: 1
limits:
  - {{id: cap, window: 24h, scope: {{wallets: [{wallet}], assets: [ETH]}},
     max_amount: "{10 * UNIT}", on_exceed: deny}}
rules:
  - id: big
    match: {{type: withdrawal, assets: [ETH], amount_gt: "{units * UNIT}"}}
    action: {{require_approvals: {{count: 1, group: treasury}}}}
  - {{id: allow-all, match: {{type: withdrawal}}, action: allow}}
"""


@pytest.mark.parametrize("waiting", ["approved", "pending_approval"])
def test_a_waiting_request_marked_cancelled_still_reserves_its_room(
    setup: tuple[Installation, Api, WalletInfo], waiting: str
) -> None:
    """An approved request not yet claimed, or one waiting for approvals, reserves its amount;
    the insider marks its row `cancelled` (a move the status trigger allows) so that intake,
    which counts rows, approves another in that room. The ledger has no end for the first (no
    `request.cancelled` entry): the signer still counts it, and the second is not signed."""
    inst, api, wallet = setup
    if waiting == "pending_approval":
        inst.apply_policy(_approvals_above(wallet.name, 5))
    first = api.create(withdrawal(wallet.name, amount=str(6 * UNIT), nonce=0)).json()
    assert first["status"] == waiting, first
    _raw(inst, "UPDATE requests SET status = 'cancelled' WHERE id = :id", id=first["id"])
    second = api.create(withdrawal(wallet.name, amount=str(5 * UNIT), nonce=1)).json()
    assert second["status"] == "approved", second  # intake believed the row
    assert _signer(inst).drain() == 0
    view = assert_not_signed(inst, api, second["id"])
    assert view["status"] == "rejected"
    assert f"{6 * UNIT} + {5 * UNIT}" in view["reason"]
    assert not _active_freezes(inst)


def test_a_request_cancelled_through_custody_frees_its_room_for_the_signer(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    """The ledger's `request.cancelled` entry ends a reservation: counting waiting requests from
    the ledger holds nothing back that ended honestly."""
    inst, api, wallet = setup
    first = api.create(withdrawal(wallet.name, amount=str(6 * UNIT), nonce=0)).json()
    assert api.call("POST", f"/v1/requests/{first['id']}/cancel").status_code == 200
    second = api.create(withdrawal(wallet.name, amount=str(5 * UNIT), nonce=1)).json()
    assert second["status"] == "approved", second
    assert _signer(inst).drain() == 1
    assert api.get(second["id"]).json()["status"] == "signed"
