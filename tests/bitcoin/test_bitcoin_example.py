"""examples/bitcoin_psbt.py, a coordinator's PSBT made with embit from the descriptor that
`wallets list` shows, is signed by custody and checked by an independent interpreter: the README's
Bitcoin flow, end to end (the SDK part of the script is tests/client's business)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from custody.chains.bitcoin import wallet_script
from custody.signing.worker import SignerWorker
from tests.bitcoin.bitcoin_support import ELSEWHERE, bitcoin_wallet, body, verify_independently
from tests.support.api import Api
from tests.support.cli import invoke, ok_json
from tests.support.installation import Installation

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bitcoin_psbt.py"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bitcoin_psbt_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def btc_allowed(installation: Installation) -> Iterator[None]:
    installation.apply_policy(
        "version: 1\nrules:\n  - {id: btc, match: {type: bitcoin_psbt}, action: allow}\n"
    )
    try:
        yield
    finally:
        installation.allow_all_policy()


def test_the_example_coordinator_psbt_is_signed_and_verifies(
    api: Api, signer: SignerWorker, installation: Installation, btc_allowed: None
) -> None:
    wallet = bitcoin_wallet(installation, owners=3, threshold=2)
    listed = ok_json(invoke(["wallets", "list", "--json"], installation.env))
    (shown,) = [w for w in listed if w["name"] == wallet.name]
    coins = [(os.urandom(32).hex(), 0, 80_000), (os.urandom(32).hex(), 3, 45_000)]
    psbt = _example().build_psbt(shown["descriptor"], coins, [(ELSEWHERE, 100_000)], 1_500)
    created = api.create(body(wallet, psbt))
    assert created.status_code == 201, created.text
    assert created.json()["amount"] == "100000"  # the change went back to the wallet
    assert created.json()["status"] == "approved", created.json()
    assert signer.drain() == 1
    signed = api.get(created.json()["id"]).json()
    assert signed["status"] == "signed", signed
    script = wallet_script(wallet.descriptor).script_pubkey
    verify_independently(signed["result"]["raw_transaction"], [(script, 80_000), (script, 45_000)])
