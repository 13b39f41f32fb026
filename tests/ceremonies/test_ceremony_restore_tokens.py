"""`custody ceremony restore --token T` into an installation's second token (tests/conftest.py
SECOND_TOKEN, configured as `[tokens.vault]`): the keys land on that token and only there, keep
their wallets' addresses, and sign there; an unknown token is refused before any share is read.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_account import Account
from fastapi.testclient import TestClient as HttpClient

from custody.app import create_app
from custody.hsm import DevToken, KeyNotFound
from custody.signing.worker import SignerWorker
from tests.ceremonies.conftest import Source
from tests.support.api import Api, withdrawal
from tests.support.cli import CliResult, invoke, ok_json
from tests.support.installation import Installation, InstallationFactory

pytestmark = pytest.mark.slow  # the backup is made by `custody` processes, once per session


@pytest.fixture
def with_vault(
    installations: InstallationFactory, second_token: DevToken, source: Source
) -> Iterator[Installation]:
    inst = installations.make("sqlite")  # the keys land on the session's tokens: one backend
    inst.add_tokens({"vault": second_token})
    try:
        yield inst
    finally:
        vault = inst.runtime.token_for(second_token.label)
        for key in vault.list_keys():
            if key.label == source.key:  # leave the second token as the session made it
                vault.destroy_key(key.label)
        installations.discard(inst)


def _on(inst: Installation, token: str, label: str) -> bool:
    try:
        inst.runtime.token_for(token).get_key(label)
    except KeyNotFound:
        return False
    return True


def _restore(inst: Installation, source: Source, *extra: str) -> CliResult:
    stdin = "".join(f"{share}\n" for share in source.shares[:3])
    return invoke(["ceremony", "restore", str(source.backup), *extra], inst.env, stdin=stdin)


def test_restore_into_a_second_token_gives_the_same_addresses_and_signs_there(
    with_vault: Installation, second_token: DevToken, source: Source
) -> None:
    inst = with_vault
    # other tests of the session may restore the same backup into the main (session) token
    on_main_before = _on(inst, inst.runtime.token_label, source.key)
    done = ok_json(_restore(inst, source, "--token", "vault", "--json"))
    assert done["token"] == second_token.label
    assert [{k: w[k] for k in ("name", "chain", "address")} for w in done["wallets"]] == (
        source.wallets
    )
    keys = {k["label"]: k for k in ok_json(invoke(["keys", "list", "--json"], inst.env))}
    assert keys[source.key]["token"] == second_token.label
    assert _on(inst, second_token.label, source.key)
    assert _on(inst, inst.runtime.token_label, source.key) == on_main_before  # none put there
    [restore] = inst.ledger_entries("ceremony.restore")
    assert restore["data"]["token"] == second_token.label

    inst.allow_all_policy()
    with HttpClient(create_app(inst.runtime, run_worker=False)) as http:
        api = Api(http.request, inst.client())
        wallet = source.wallets[0]
        created = api.create(withdrawal(wallet["name"], amount="5", nonce=0))
        assert created.status_code == 201, created.text
        assert SignerWorker(inst.runtime, worker_id="vault").drain() == 1
        signed = api.get(created.json()["id"]).json()
    assert signed["status"] == "signed", signed
    assert Account.recover_transaction(signed["result"]["raw_transaction"]) == wallet["address"]


def test_restore_into_an_unknown_token_is_refused_and_imports_nothing(
    with_vault: Installation, second_token: DevToken, source: Source
) -> None:
    inst = with_vault
    before = len(inst.ledger_entries())
    on_main_before = _on(inst, inst.runtime.token_label, source.key)
    result = _restore(inst, source, "--token", "nope")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "token 'nope' is not configured" in lines[0]
    assert len(inst.ledger_entries()) == before
    assert not _on(inst, second_token.label, source.key)
    assert _on(inst, inst.runtime.token_label, source.key) == on_main_before
