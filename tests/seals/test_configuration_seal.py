"""A database insider gets nothing signed by editing configuration (issue 9 §1): the signer
trusts client keys, wallets, approvers and policy only as the installation root key sealed them.

Each attack writes the rows over a raw connection, as someone with database access and none to
the HSM would (through custody's own sessions the change would be sealed: that is the operator's
path). The signer must release nothing, leave the requests waiting, and say why in the ledger.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient as HttpClient
from sqlalchemy import text

from custody.app import create_app
from custody.approvals.approvers import add_approver
from custody.clients.service import add_client
from custody.seals.service import ConfigurationRefused, RootKey, seal, verify
from custody.signing.worker import SignerWorker
from tests.support.api import Api, withdrawal
from tests.support.cli import invoke
from tests.support.installation import Installation, WalletInfo

ETH = 10**18
ATTACKER = "0x000000000000000000000000000000000000dEaD"
GUARDED = """
version: 1
allowlists:
  treasury:
    - {{chain: ethereum, address: "0x00000000000000000000000000000000000000AA", label: desk}}
rules:
  - {{id: unlisted, match: {{type: withdrawal, destination_not_in: treasury}}, action: deny}}
  - {{id: listed, match: {{type: withdrawal, wallets: [{wallet}]}}, action: allow}}
"""
LISTED = "0x00000000000000000000000000000000000000AA"
LOOSE = "version: 1\nrules:\n  - {id: anything, match: {type: withdrawal}, action: allow}\n"


@pytest.fixture
def setup(fresh_installation: Installation) -> Iterator[tuple[Installation, Api, WalletInfo]]:
    inst = fresh_installation
    wallet = inst.wallet()
    inst.apply_policy(GUARDED.format(wallet=wallet.name))
    with HttpClient(create_app(inst.runtime, run_worker=False)) as http:
        yield inst, Api(http.request, inst.client()), wallet


def _raw(inst: Installation, sql: str, **params: Any) -> Any:
    """Behind custody's back: a plain connection, no session, no seal."""
    with inst.runtime.db.engine.begin() as conn:
        result = conn.execute(text(sql), params)
        # read before the connection goes back to the pool, which closes its cursors
        return result.freeze()() if result.returns_rows else None


def _refusals(inst: Installation) -> list[str]:
    return [e["data"]["reason"] for e in inst.ledger_entries("configuration.refused")]


def _waits_unsigned(api: Api, request_id: str, signer: SignerWorker) -> None:
    assert signer.drain() == 0
    assert api.get(request_id).json()["status"] == "approved"  # waiting, not failed


def test_a_listed_withdrawal_is_signed_under_the_sealed_configuration(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    inst, api, wallet = setup
    created = api.create(withdrawal(wallet.name, amount="1000", destination=LISTED)).json()
    assert created["status"] == "approved"
    assert SignerWorker(inst.runtime).drain() == 1
    assert _refusals(inst) == []


def test_a_replaced_client_key_signs_nothing(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    """The insider swaps in a public key they hold and submits as that client."""
    inst, api, wallet = setup
    stolen = Ed25519PrivateKey.generate()
    pem = stolen.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _raw(
        inst,
        "UPDATE clients SET public_key_pem = :p WHERE id = :i",
        p=pem.decode(),
        i=api.client.id,
    )
    api = Api(api.send, dataclasses.replace(api.client, private_key=stolen))
    created = api.create(withdrawal(wallet.name, amount="1000", destination=LISTED)).json()
    assert created["status"] == "approved"  # intake reads rows; the signer is the gate
    _waits_unsigned(api, created["id"], SignerWorker(inst.runtime))
    [reason] = _refusals(inst)
    assert f"clients/{api.client.id}: changed (public_key_pem)" in reason


def test_a_loosened_policy_row_signs_nothing(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    """The insider rewrites the active policy's text (and its digest) to allow everything."""
    inst, api, wallet = setup
    from custody.policy.loader import load_policy_text

    loose = load_policy_text(LOOSE, "loose.yaml")
    _raw(
        inst,
        "UPDATE policy_versions SET source_text = :t, digest = :d "
        "WHERE id = (SELECT MAX(id) FROM policy_versions)",
        t=LOOSE,
        d=loose.digest,
    )
    created = api.create(withdrawal(wallet.name, amount=str(50 * ETH), destination=ATTACKER))
    view = created.json()
    _waits_unsigned(api, view["id"], SignerWorker(inst.runtime))
    assert "policies/" in _refusals(inst)[0]


def test_a_wallet_pointed_at_another_key_signs_nothing(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    inst, api, wallet = setup
    other = inst.wallet()
    created = api.create(withdrawal(wallet.name, amount="1000", destination=LISTED)).json()
    _raw(
        inst,
        "UPDATE wallets SET key_id = (SELECT key_id FROM wallets WHERE name = :o) WHERE name = :w",
        o=other.name,
        w=wallet.name,
    )
    _waits_unsigned(api, created["id"], SignerWorker(inst.runtime))
    assert f"wallets/{wallet.name}: changed (key, key_id)" in _refusals(inst)[0]


def test_an_approver_added_to_a_group_signs_nothing(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    inst, api, wallet = setup
    created = api.create(withdrawal(wallet.name, amount="1000", destination=LISTED)).json()
    with inst.runtime.db.write() as session:
        approver = add_approver(
            session, name="alice", groups=["treasury"], device_key_pem=None, actor="test"
        )
    _raw(
        inst,
        'INSERT INTO approver_groups (approver_id, "group") VALUES (:a, :g)',
        a=approver.id,
        g="governors",
    )
    # The check covers the approvers with a decision on the request (here a row of the
    # insider's, whose signature would not verify either).
    _raw(
        inst,
        "INSERT INTO approvals (request_id, approver_id, decision, statement, method, evidence, "
        "groups, created_at) VALUES (:r, :a, 'approve', :s, 'device_key', '{}', '[]', :t)",
        r=created["id"],
        a=approver.id,
        s=b"{}",
        t=datetime.now(UTC),
    )
    _waits_unsigned(api, created["id"], SignerWorker(inst.runtime))
    assert f"approvers/{approver.id}: changed (groups)" in _refusals(inst)[0]


def test_a_rolled_back_seal_table_signs_nothing(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    """Deleting the newest seal would make the previous (looser) configuration current."""
    inst, api, wallet = setup
    created = api.create(withdrawal(wallet.name, amount="1000", destination=LISTED)).json()
    _raw(
        inst,
        "DELETE FROM configuration_seals "
        "WHERE epoch = (SELECT MAX(epoch) FROM configuration_seals)",
    )
    _waits_unsigned(api, created["id"], SignerWorker(inst.runtime))
    assert "rolled back" in _refusals(inst)[0]


def test_a_forged_seal_signs_nothing(setup: tuple[Installation, Api, WalletInfo]) -> None:
    """The insider re-seals their edit with a key of their own: it is not the HSM's root key."""
    inst, api, wallet = setup
    created = api.create(withdrawal(wallet.name, amount="1000", destination=LISTED)).json()
    forger = Ed25519PrivateKey.generate()
    _raw(inst, "UPDATE clients SET role = 'trading'")  # harmless, but needs a new seal
    _raw(
        inst,
        "UPDATE configuration_seals SET signature = :s "
        "WHERE epoch = (SELECT MAX(epoch) FROM configuration_seals)",
        s=forger.sign(b"anything"),
    )
    _waits_unsigned(api, created["id"], SignerWorker(inst.runtime))
    assert "does not verify with the installation root key" in _refusals(inst)[0]


def test_a_refusal_freezes_signing_until_the_rows_are_restored_and_people_lift_it(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    inst, api, wallet = setup
    created = api.create(withdrawal(wallet.name, amount="1000", destination=LISTED)).json()
    original = _raw(inst, "SELECT address FROM wallets WHERE name = :w", w=wallet.name).scalar_one()
    _raw(inst, "UPDATE wallets SET address = :a WHERE name = :w", a=ATTACKER, w=wallet.name)
    signer = SignerWorker(inst.runtime)
    for _ in range(3):
        _waits_unsigned(api, created["id"], signer)
    assert len(_refusals(inst)) == 1
    [frozen] = inst.ledger_entries("signing.frozen")
    assert frozen["data"]["source"] == "breaker:configuration-seal"
    assert "changed (address)" in frozen["data"]["evidence"]["detail"]
    # Restoring the rows is not enough: people look, then lift the freeze.
    _raw(inst, "UPDATE wallets SET address = :a WHERE name = :w", a=original, w=wallet.name)
    _waits_unsigned(api, created["id"], signer)
    lifted = invoke(["unfreeze", "--reason", "row restored from backup"], inst.env)
    assert lifted.returncode == 0, lifted.stderr
    assert signer.drain() == 1
    assert api.get(created["id"]).json()["status"] == "signed"


def test_changes_through_custody_are_sealed_as_they_commit(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    inst, _api, _wallet = setup
    before = len(inst.ledger_entries("configuration.sealed"))
    inst.client("sealed-client")
    entries = inst.ledger_entries("configuration.sealed")
    assert len(entries) == before + 1
    last = entries[-1]["data"]
    assert last["epoch"] == entries[-2]["data"]["epoch"] + 1
    assert any(
        change.startswith("clients/") and change.endswith(": added") for change in last["changes"]
    )
    assert "client.added" in last["reason"]


def test_the_cli_verifies_and_reseals(setup: tuple[Installation, Api, WalletInfo]) -> None:
    inst, api, _wallet = setup
    ok = invoke(["config", "verify", "--json"], inst.env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["epoch"] >= 1
    _raw(
        inst,
        "UPDATE clients SET disabled_at = NULL, role = 'auditor' WHERE id = :i",
        i=api.client.id,
    )
    bad = invoke(["config", "verify"], inst.env)
    assert bad.returncode != 0
    assert f"clients/{api.client.id}: changed (role)" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    empty = invoke(["config", "seal", "--reason", " "], inst.env)
    assert empty.returncode != 0
    resealed = invoke(
        ["config", "seal", "--reason", "reviewed: role change intended", "--json"], inst.env
    )
    assert resealed.returncode == 0, resealed.stderr
    assert json.loads(resealed.stdout)["changes"] == [f"clients/{api.client.id}: changed (role)"]
    assert invoke(["config", "verify"], inst.env).returncode == 0


def test_sealing_refuses_to_bless_a_table_behind_the_ledger(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    inst, _api, _wallet = setup
    _raw(inst, "DELETE FROM configuration_seals")
    with pytest.raises(ConfigurationRefused, match="seals were removed"):
        inst.client("after-the-deletion")
    rt = inst.runtime
    with rt.db.write() as session:
        assert seal(
            session,
            rt.token(),
            key_label=rt.settings.root_key_label,
            actor="test",
            reason="investigated",
            force=True,
        )
    root = RootKey(
        rt.settings.root_key_label, rt.token().get_key(rt.settings.root_key_label).public_key
    )
    with rt.db.read() as session:
        verify(session, root)


def test_an_emptied_seal_table_signs_nothing_and_init_does_not_bless_it(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    inst, api, wallet = setup
    created = api.create(withdrawal(wallet.name, amount="1000", destination=LISTED)).json()
    _raw(inst, "DELETE FROM configuration_seals")
    _waits_unsigned(api, created["id"], SignerWorker(inst.runtime))
    assert "the seal table was emptied" in _refusals(inst)[0]
    again = invoke(["init"], inst.env)
    assert again.returncode == 0, again.stderr
    assert "no seal is stored" in again.stderr  # a warning; nothing sealed behind people's backs
    assert _raw(inst, "SELECT COUNT(*) FROM configuration_seals").scalar_one() == 0


def test_two_seals_in_one_transaction_are_consecutive(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    """A seal made earlier in a transaction has its ledger entry still pending: a second change
    sealed before the commit follows it instead of taking it for a removed seal."""
    inst, _api, _wallet = setup
    rt = inst.runtime
    pem = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with rt.db.write() as session:
        add_client(session, name="first-of-two", public_key_pem=pem, actor="test")
        first = seal(
            session, rt.token(), key_label=rt.settings.root_key_label, actor="test", reason="one"
        )
        add_client(session, name="second-of-two", public_key_pem=pem, actor="test")
    assert first is not None
    epochs = [e["data"]["epoch"] for e in inst.ledger_entries("configuration.sealed")]
    assert epochs[-2:] == [first.epoch, first.epoch + 1]
    assert invoke(["config", "verify"], inst.env).returncode == 0


def test_a_seal_rolled_back_with_its_ledger_entry_signs_nothing_in_a_running_signer(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    """The newest seal disabled a client. The insider drops the ledger's triggers, enables the
    client again in its row, and deletes the newest seal and its `configuration.sealed` entry:
    rows, seal table and ledger all agree again, on the older, looser configuration. A signer
    that saw the newer seal refuses at once, before any checkpoint's consistency check could
    notice the rewritten ledger."""
    from custody.clients.service import disable
    from tests.ledger.conftest import drop_ledger_triggers

    inst, api, wallet = setup
    spare = inst.client()
    with inst.runtime.db.write() as session:
        disable(session, name=spare.name, actor="operator")
    signer = SignerWorker(inst.runtime)
    first = api.create(withdrawal(wallet.name, amount="1000", destination=LISTED)).json()
    assert signer.drain() == 1  # this signer has seen the newest seal
    created = api.create(withdrawal(wallet.name, amount="1000", destination=LISTED, nonce=1)).json()
    newest = int(_raw(inst, "SELECT MAX(epoch) FROM configuration_seals").scalar_one())
    drop_ledger_triggers(inst)
    _raw(inst, "UPDATE clients SET disabled_at = NULL WHERE id = :i", i=spare.id)
    _raw(inst, "DELETE FROM configuration_seals WHERE epoch = :e", e=newest)
    _raw(
        inst,
        "DELETE FROM ledger_entries WHERE kind = 'configuration.sealed' AND \"index\" = "
        "(SELECT MAX(\"index\") FROM ledger_entries WHERE kind = 'configuration.sealed')",
    )
    _waits_unsigned(api, created["id"], signer)
    assert f"already saw seal {newest}" in _refusals(inst)[-1]
    assert api.get(first["id"]).json()["status"] == "signed"


def test_rows_a_claim_relies_on_cannot_change_until_it_commits(
    setup: tuple[Installation, Api, WalletInfo],
) -> None:
    """PostgreSQL reads committed rows per statement: an edit landing between the signer's seal
    check and its later reads in the same claim would be used unchecked. The check holds the
    rows it compared FOR SHARE, so the edit waits for the claim (SQLite's write transaction
    excludes every other writer anyway)."""
    inst, api, wallet = setup
    if inst.backend != "postgres":
        pytest.skip("SQLite serialises writers: no statement of another writer can interleave")
    from sqlalchemy.exc import OperationalError

    from custody.seals.document import Scope
    from custody.seals.gate import ConfigurationGate

    wallet_id = int(
        _raw(inst, "SELECT id FROM wallets WHERE name = :n", n=wallet.name).scalar_one()
    )
    label = inst.runtime.settings.root_key_label
    gate = ConfigurationGate(lambda: RootKey.on(inst.runtime.token(), label))
    scope = Scope(
        client_ids=frozenset({api.client.id}),
        wallet_ids=frozenset({wallet_id}),
        approver_ids=frozenset(),
    )
    with inst.runtime.db.write() as session:
        assert gate.check(session, scope).refused is None
        for table, key in (("clients", api.client.id), ("wallets", wallet_id)):
            with inst.runtime.db.engine.connect() as conn:
                conn.execute(text("SET lock_timeout = '200ms'"))
                edit = text(f"UPDATE {table} SET id = id WHERE id = :k")
                with pytest.raises(OperationalError, match="lock timeout"):
                    conn.execute(edit, {"k": key})
    with inst.runtime.db.engine.begin() as conn:  # once the claim commits, the edit goes through
        conn.execute(text("UPDATE clients SET id = id WHERE id = :k"), {"k": api.client.id})
