"""An external cosigner's key in a P2WSH wallet: custody adds its own signature and returns the
PSBT; a PSBT the cosigner signed is then completed and finalized by custody."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from embit.ec import PrivateKey
from embit.psbt import PSBT

from custody.chains.bitcoin import wallet_script
from custody.chains.bitcoin.psbt import script_code
from custody.signing.worker import SignerWorker
from custody.wallets import service
from tests.bitcoin.bitcoin_support import (
    BitcoinWallet,
    body,
    funding_psbt,
    new_key,
    verify_independently,
)
from tests.support.api import Api
from tests.support.installation import Installation


@pytest.fixture
def allow_btc(installation: Installation) -> Iterator[None]:
    installation.apply_policy(
        "version: 1\nrules:\n  - {id: btc, match: {type: bitcoin_psbt}, action: allow}\n"
        "  - {id: allow-withdrawals, match: {type: withdrawal}, action: allow}\n"
    )
    yield
    installation.allow_all_policy()


def _shared_wallet(installation: Installation, cosigner: PrivateKey) -> BitcoinWallet:
    label = new_key(installation)
    with installation.runtime.db.write() as session:
        wallet = service.create_bitcoin_wallet(
            session,
            name=f"btc-shared-{secrets.token_hex(4)}",
            chain_name="regtest",
            owner_labels=[label, cosigner.get_public_key().sec().hex()],
            threshold=2,
            actor="test",
        )
        assert wallet.descriptor is not None
        return BitcoinWallet(wallet.name, wallet.address, wallet.descriptor, (label,))


def _cosign(
    psbt: PSBT, wallet: BitcoinWallet, cosigner: PrivateKey, amounts: tuple[int, ...]
) -> None:
    code = script_code(wallet_script(wallet.descriptor))
    for index, amount in enumerate(amounts):
        sighash = psbt.tx.sighash_segwit(index, code, amount)
        signature = cosigner.sign(sighash).serialize() + b"\x01"
        psbt.inputs[index].partial_sigs[cosigner.get_public_key()] = signature


def test_custody_signs_its_part_and_returns_the_psbt(
    api: Api, installation: Installation, signer: SignerWorker, allow_btc: None
) -> None:
    cosigner = PrivateKey(secrets.token_bytes(32))
    wallet = _shared_wallet(installation, cosigner)
    created = api.create(body(wallet, funding_psbt(wallet))).json()
    assert created["status"] == "approved", created
    assert signer.drain() == 1
    result = api.get(created["id"]).json()["result"]
    assert result.get("raw_transaction") is None  # one of two signatures: not final yet
    returned = PSBT.from_base64(result["psbt"])
    custody_key = wallet_script(wallet.descriptor).owners[0]  # owners keep the order given
    assert custody_key != cosigner.get_public_key().sec()
    for inp in returned.inputs:
        assert [key.sec() for key in inp.partial_sigs] == [custody_key]


def test_a_psbt_the_cosigner_signed_is_completed_and_verifies(
    api: Api, installation: Installation, signer: SignerWorker, allow_btc: None
) -> None:
    cosigner = PrivateKey(secrets.token_bytes(32))
    wallet = _shared_wallet(installation, cosigner)
    psbt = funding_psbt(wallet, inputs=(60_000, 50_000))
    _cosign(psbt, wallet, cosigner, (60_000, 50_000))
    created = api.create(body(wallet, psbt)).json()
    assert created["status"] == "approved", created
    assert signer.drain() == 1
    result = api.get(created["id"]).json()["result"]
    spk = wallet_script(wallet.descriptor).script_pubkey
    tx = verify_independently(result["raw_transaction"], [(spk, 60_000), (spk, 50_000)])
    assert tx.GetTxid()[::-1].hex() == result["txid"]


def test_a_forged_cosigner_signature_is_refused(
    api: Api, installation: Installation, allow_btc: None
) -> None:
    cosigner = PrivateKey(secrets.token_bytes(32))
    wallet = _shared_wallet(installation, cosigner)
    psbt = funding_psbt(wallet, inputs=(60_000, 50_000))
    _cosign(psbt, wallet, cosigner, (60_000, 49_000))  # signs a lie about input 1's amount
    before = installation.counts()
    refused = api.create(body(wallet, psbt))
    assert refused.status_code == 422, refused.text
    assert "input 1" in refused.json()["detail"]
    assert installation.counts() == before
