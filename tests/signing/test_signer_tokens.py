"""Several tokens in one installation, in this process: the session token is the main one and a
second token of the same SoftHSM configuration (tests/conftest.py SECOND_TOKEN) is configured as
`[tokens.b]`. Keys are generated on the token named, signing goes to the key's token, and a
refused PIN on the second token holds logins to it alone.

A token that goes away needs a reset of the PKCS#11 library, which would end the sessions other
tests of this process hold: that case runs against `custody serve`
(tests/faults/test_hsm_tokens.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import select

from custody.app import create_app
from custody.hsm import DevToken, KeyNotFound, read_pin_file
from custody.hsmhealth import holds, status
from custody.hsmhealth.status import HsmState
from custody.requests import lifecycle
from custody.requests import repository as requests
from custody.requests.states import RequestStatus
from custody.signing.worker import SignerWorker
from custody.store.base import utcnow
from custody.store.models import Key
from tests.support.api import Api, withdrawal
from tests.support.cli import invoke, ok_json
from tests.support.installation import Installation, InstallationFactory, allow_all_installation


@pytest.fixture
def two_tokens(
    installations: InstallationFactory, second_token: DevToken
) -> Iterator[Installation]:
    with allow_all_installation(installations) as inst:
        inst.add_tokens({"b": second_token})
        yield inst


def _signed(inst: Installation, api: Api, ids: list[str]) -> dict[str, dict[str, str]]:
    views = {request_id: api.get(request_id).json() for request_id in ids}
    return {i: v["result"] for i, v in views.items() if v["status"] == "signed"}


def test_a_key_on_the_second_token_signs_a_withdrawal_that_recovers_to_its_wallet(
    two_tokens: Installation, second_token: DevToken
) -> None:
    inst = two_tokens
    on_b = inst.wallet(token=second_token.label)
    on_main = inst.wallet()
    with pytest.raises(KeyNotFound):  # generated on B, and only there
        inst.runtime.token().get_key(on_b.key_label)
    assert inst.runtime.token_for(second_token.label).get_key(on_b.key_label)
    with HttpClient(create_app(inst.runtime, run_worker=False)) as http:
        api = Api(http.request, inst.client())
        ids = [
            api.create(withdrawal(wallet.name, amount="7", nonce=3)).json()["id"]
            for wallet in (on_b, on_main)
        ]
        assert SignerWorker(inst.runtime, worker_id="tokens").drain() == 2
        results = _signed(inst, api, ids)
    assert Account.recover_transaction(results[ids[0]]["raw_transaction"]) == on_b.address
    assert Account.recover_transaction(results[ids[1]]["raw_transaction"]) == on_main.address


def test_keys_generate_on_a_named_token_and_keys_list_shows_it(
    two_tokens: Installation, second_token: DevToken
) -> None:
    inst = two_tokens
    generate = ["keys", "generate", "--label", "gen-on-b", "--algorithm", "secp256k1"]
    made = ok_json(invoke([*generate, "--token", "b", "--json"], inst.env))
    try:
        assert made["token"] == second_token.label
        listed = {k["label"]: k for k in ok_json(invoke(["keys", "list", "--json"], inst.env))}
        assert listed["gen-on-b"]["token"] == second_token.label
        # a backup ceremony copies the main token's keys: keys list does not promise one
        assert listed["gen-on-b"]["backup_status"].startswith(f"on token {second_token.label}:")
        assert made["backup_status"] == listed["gen-on-b"]["backup_status"]
        on_b = inst.runtime.token_for(second_token.label).get_key("gen-on-b")
        assert on_b.public_key.hex() == made["public_key"]
        human = invoke(["keys", "list"], inst.env).stdout
        assert second_token.label in human
    finally:
        inst.runtime.token_for(second_token.label).destroy_key("gen-on-b")


def test_an_unknown_token_is_refused_in_one_line_and_nothing_is_made(
    two_tokens: Installation,
) -> None:
    inst = two_tokens
    result = invoke(
        ["keys", "generate", "--label", "nowhere", "--algorithm", "secp256k1", "--token", "nope"],
        inst.env,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "token 'nope' is not configured" in lines[0]
    assert "custody-test-b" in lines[0]  # it names the tokens there are
    with inst.runtime.db.read() as session:
        assert session.execute(select(Key).where(Key.label == "nowhere")).first() is None
    for label in (inst.runtime.token_label, "custody-test-b"):
        with pytest.raises(KeyNotFound):
            inst.runtime.token_for(label).get_key("nowhere")


def test_a_refused_pin_on_the_second_token_holds_its_logins_only(
    two_tokens: Installation, second_token: DevToken, tmp_path: Path
) -> None:
    inst = two_tokens
    on_b, on_main = inst.wallet(token=second_token.label), inst.wallet()
    wrong = tmp_path / "b.pin"
    wrong.write_text("not-the-pin\n")
    wrong.chmod(0o600)
    inst.add_tokens({"b": DevToken(**{**second_token.__dict__, "pin_file": wrong})})
    with HttpClient(create_app(inst.runtime, run_worker=False)) as http:
        api = Api(http.request, inst.client())
        waits = api.create(withdrawal(on_b.name, amount="1", nonce=1)).json()["id"]
        first = api.create(withdrawal(on_main.name, amount="1", nonce=1)).json()["id"]
        worker = SignerWorker(inst.runtime, worker_id="held")
        assert worker.drain() == 1
        # B refused the PIN: its logins are held, and its request waits, approved, unclaimed
        with inst.runtime.db.read() as session:
            assert [h.token_label for h in holds.all_holds(session)] == [second_token.label]
        assert api.get(waits).json()["status"] == "approved"
        assert set(_signed(inst, api, [first])) == {first}
        # the main token goes on signing, and B is not tried again
        later = api.create(withdrawal(on_main.name, amount="1", nonce=2)).json()["id"]
        assert worker.drain() == 1
        assert set(_signed(inst, api, [later, waits])) == {later}
        tokens = {t["token"]: t for t in ok_json(invoke(["hsm", "tokens", "--json"], inst.env))}
        assert tokens["b"]["health"] == "login_held"
        assert "the PIN is incorrect" in tokens["b"]["detail"]
        assert tokens[inst.runtime.token_label]["health"] != "login_held"

        # the operator fixes B's PIN and re-arms B: its request is signed
        wrong.write_text(read_pin_file(second_token.pin_file) + "\n")
        rearmed = ok_json(invoke(["hsm", "rearm", "--token", "b", "--json"], inst.env))
        assert (rearmed["token"], rearmed["rearmed"]) == (second_token.label, True)
        assert SignerWorker(inst.runtime, worker_id="rearmed").drain() == 1
        result = _signed(inst, api, [waits])[waits]
    assert Account.recover_transaction(result["raw_transaction"]) == on_b.address
    rearm_entries = inst.ledger_entries("hsm.rearmed")
    assert [e["data"]["token"] for e in rearm_entries] == [second_token.label]


def test_a_second_token_whose_pin_cannot_be_read_only_makes_its_requests_wait(
    two_tokens: Installation, second_token: DevToken, tmp_path: Path
) -> None:
    inst = two_tokens
    on_b, on_main = inst.wallet(token=second_token.label), inst.wallet()
    missing = tmp_path / "moved.pin"
    inst.add_tokens({"b": DevToken(**{**second_token.__dict__, "pin_file": missing})})
    with HttpClient(create_app(inst.runtime, run_worker=False)) as http:
        api = Api(http.request, inst.client())
        waits = api.create(withdrawal(on_b.name, amount="1", nonce=1)).json()["id"]
        signs = api.create(withdrawal(on_main.name, amount="1", nonce=1)).json()["id"]
        worker = SignerWorker(inst.runtime, worker_id="no-pin")
        assert worker.drain() == 1
        assert set(_signed(inst, api, [waits, signs])) == {signs}
        view = api.get(waits).json()
        assert view["status"] == "approved", view  # waiting, not failed
        assert "moved.pin" in worker.tokens[second_token.label].detail
        with inst.runtime.db.read() as session:
            assert holds.all_holds(session) == []  # no PIN was refused: nothing to re-arm

        missing.write_text(read_pin_file(second_token.pin_file) + "\n")
        missing.chmod(0o600)
        assert SignerWorker(inst.runtime, worker_id="pin-back").drain() == 1
        result = _signed(inst, api, [waits])[waits]
    assert Account.recover_transaction(result["raw_transaction"]) == on_b.address


def test_a_request_shows_waiting_for_its_own_token_only(
    two_tokens: Installation, second_token: DevToken
) -> None:
    inst = two_tokens
    on_b, on_main = inst.wallet(token=second_token.label), inst.wallet()
    outage = f"no HSM token labelled {second_token.label!r} is present"
    with inst.runtime.db.write() as session:
        for label, state, detail in (
            (inst.runtime.token_label, HsmState.OK, ""),
            (second_token.label, HsmState.UNAVAILABLE, outage),
        ):
            status.report(
                session,
                process="signer-tokens",
                token_label=label,
                state=state,
                detail=detail,
                since=utcnow(),
            )
    inst.apply_policy(  # approved by people later: the requests stay live, unsigned
        "version: 1\nrules:\n  - {id: one, match: {type: withdrawal}, "
        "action: {require_approvals: {count: 1, group: treasury}}}\n"
    )
    with HttpClient(create_app(inst.runtime, run_worker=False)) as http:
        api = Api(http.request, inst.client())
        ids = {
            wallet.name: api.create(withdrawal(wallet.name, amount="1", nonce=5)).json()["id"]
            for wallet in (on_b, on_main)
        }
        with inst.runtime.db.write() as session:
            for request_id in ids.values():
                request = requests.locked(session, request_id, for_update=True)
                lifecycle.move(session, request, RequestStatus.APPROVED, actor="test", reason="ok")
        assert api.get(ids[on_b.name]).json()["waiting"]["hsm"] == outage
        assert "waiting" not in api.get(ids[on_main.name]).json()
        assert http.get("/readyz").status_code == 200  # the main token is fine
