"""Multisig owner keys on several tokens: each key signs on its own token (the session token
and a second token of the same SoftHSM configuration, `[tokens.b]`), and a token that fails
is skipped while the keys on the others still give every input its M signatures.

The failing token is one whose PIN is refused (its logins are then held): a token that goes
away needs a library reset, which would end the sessions other tests of this process hold
(tests/signing/test_signer_tokens.py says the same).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import coincurve
import pytest
from embit.psbt import PSBT
from fastapi.testclient import TestClient as HttpClient

from custody.app import create_app
from custody.chains.bitcoin import wallet_script
from custody.hsm import DevToken, KeyNotFound
from custody.hsmhealth import holds
from custody.signing.worker import SignerWorker
from tests.bitcoin.bitcoin_support import (
    BitcoinWallet,
    bitcoin_wallet,
    body,
    funding_psbt,
    verify_independently,
)
from tests.support.api import Api
from tests.support.installation import Installation, InstallationFactory, allow_all_installation

POLICY = """
version: 1
rules:
  - {id: allow-btc, match: {type: bitcoin_psbt}, action: allow}
"""


@pytest.fixture
def two_tokens(
    installations: InstallationFactory, second_token: DevToken
) -> Iterator[Installation]:
    with allow_all_installation(installations) as inst:
        inst.add_tokens({"b": second_token})
        inst.apply_policy(POLICY)
        yield inst


def _refuse_pin(inst: Installation, token: DevToken, tmp_path: Path) -> None:
    wrong = tmp_path / "b.pin"
    wrong.write_text("not-the-pin\n")
    wrong.chmod(0o600)
    inst.add_tokens({"b": DevToken(**{**token.__dict__, "pin_file": wrong})})


def _spent(wallet: BitcoinWallet, amounts: tuple[int, ...]) -> list[tuple[bytes, int]]:
    return [(wallet_script(wallet.descriptor).script_pubkey, amount) for amount in amounts]


def _sign(
    inst: Installation,
    wallet: BitcoinWallet,
    amounts: tuple[int, ...],
    *,
    refuse: tuple[DevToken, Path] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Ask for a PSBT spending `amounts` (approved at once), break the token in `refuse` if
    given, drain a worker: how many it signed, and the request's view."""
    psbt = funding_psbt(wallet, inputs=amounts, send=50_000, change=sum(amounts) - 51_000)
    with HttpClient(create_app(inst.runtime, run_worker=False)) as http:
        api = Api(http.request, inst.client())
        created = api.create(body(wallet, psbt))
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "approved"
        if refuse is not None:
            _refuse_pin(inst, *refuse)
        signed = SignerWorker(inst.runtime, worker_id="btc-tokens").drain()
        return signed, dict(api.get(created.json()["id"]).json())


def _signed_by(result: dict[str, str]) -> list[set[bytes]]:
    """Per input, the owner keys whose signatures the returned PSBT carries."""
    returned = PSBT.from_base64(result["psbt"])
    return [{bytes(key.sec()) for key in inp.partial_sigs} for inp in returned.inputs]


def _public_key(inst: Installation, label: str, token: str | None = None) -> bytes:
    info = inst.runtime.token_for(token or inst.runtime.token_label).get_key(label)
    return coincurve.PublicKey(info.public_key).format(compressed=True)


def test_two_of_three_across_the_main_and_second_tokens_is_signed_on_both(
    two_tokens: Installation, second_token: DevToken
) -> None:
    inst = two_tokens
    # the first owner (the wallet's key_id) on B, so the wallet's own key is not the main one
    b = second_token.label
    wallet = bitcoin_wallet(inst, 3, 2, tokens=(b, None, b))
    with pytest.raises(KeyNotFound):  # B's keys are on B only
        inst.runtime.token().get_key(wallet.key_labels[0])
    amounts = (40_000, 30_000)
    signed, view = _sign(inst, wallet, amounts)
    assert signed == 1
    assert view["status"] == "signed", view
    verify_independently(view["result"]["raw_transaction"], _spent(wallet, amounts))
    # descriptor order: B's first owner signs on B, then the main token's key; the third waits
    expected = {_public_key(inst, wallet.key_labels[0], b), _public_key(inst, wallet.key_labels[1])}
    assert _signed_by(view["result"]) == [expected, expected]


def test_a_failing_token_is_skipped_while_two_keys_remain(
    two_tokens: Installation, second_token: DevToken, tmp_path: Path
) -> None:
    inst = two_tokens
    wallet = bitcoin_wallet(inst, 3, 2, tokens=(second_token.label, None, None))
    amounts = (60_000, 20_000)
    signed, view = _sign(inst, wallet, amounts, refuse=(second_token, tmp_path))
    assert signed == 1
    assert view["status"] == "signed", view
    verify_independently(view["result"]["raw_transaction"], _spent(wallet, amounts))
    on_main = {_public_key(inst, label) for label in wallet.key_labels[1:]}
    assert _signed_by(view["result"]) == [on_main, on_main]
    # B's refusal is recorded as for any token: its logins are held
    with inst.runtime.db.read() as session:
        assert [h.token_label for h in holds.all_holds(session)] == [second_token.label]


def test_fewer_than_m_reachable_keys_make_the_request_wait(
    two_tokens: Installation, second_token: DevToken, tmp_path: Path
) -> None:
    inst = two_tokens
    b = second_token.label
    wallet = bitcoin_wallet(inst, 3, 2, tokens=(b, b, None))
    signed, view = _sign(inst, wallet, (60_000,), refuse=(second_token, tmp_path))
    assert signed == 0
    assert view["status"] == "approved", view
    assert not view.get("result")
