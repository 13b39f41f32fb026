"""PSBTv2 (BIP-370): the same transactions as version 0 PSBTs, whose unsigned transaction is
built from per-input and per-output fields, are signed on the real token and verify with
python-bitcointx; the PSBT comes back as version 2. What would let one PSBT be read as two
transactions is refused: a missing field, a key given twice, modifiable flags, version 2 fields
inside a version 0 PSBT, and an input sequence of 0 (which embit reads as 0xffffffff).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator

import pytest
from embit.psbt import PSBT
from embit.transaction import Transaction

from custody.chains.bitcoin import wallet_script
from custody.signing.worker import SignerWorker
from tests.bitcoin.bitcoin_support import (
    BitcoinWallet,
    bitcoin_wallet,
    body,
    funding_psbt,
    refused,
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


def _v2(psbt: PSBT) -> PSBT:
    """The same PSBT in version 2 form (embit writes the fields BIP-370 requires)."""
    copy = PSBT.from_base64(psbt.to_base64())
    copy.version = 2
    return PSBT.from_base64(copy.to_base64())


@pytest.mark.parametrize("owners", [1, 3])
def test_a_version_2_psbt_is_signed_and_verifies_independently(
    api: Api, installation: Installation, signer: SignerWorker, allow_btc: None, owners: int
) -> None:
    wallet = bitcoin_wallet(installation, owners=owners, threshold=None if owners == 1 else 2)
    v0 = funding_psbt(wallet)
    v2 = _v2(v0)
    assert v2.version == 2
    assert not v2.to_base64().startswith(v0.to_base64()[:12])  # no global unsigned tx
    created = api.create(body(wallet, v2))
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "approved", created.json()
    assert created.json()["amount"] == "70000"
    assert signer.drain() == 1
    result = api.get(created.json()["id"]).json()["result"]
    script = wallet_script(wallet.descriptor).script_pubkey
    tx = verify_independently(result["raw_transaction"], [(script, 60_000), (script, 50_000)])
    assert tx.GetTxid()[::-1].hex() == result["txid"] == v0.tx.txid().hex()
    returned = PSBT.from_base64(result["psbt"])
    assert returned.version == 2
    assert returned.tx.txid() == v0.tx.txid()
    assert all(inp.final_scriptwitness is not None for inp in returned.inputs)


def _without_tx_version(wallet: BitcoinWallet) -> tuple[str, str]:
    psbt = _v2(funding_psbt(wallet))
    psbt.tx_version = None
    return psbt.to_base64(), "must carry PSBT_GLOBAL_TX_VERSION"


def _modifiable(wallet: BitcoinWallet) -> tuple[str, str]:
    psbt = _v2(funding_psbt(wallet))
    psbt.unknown = {b"\x06": b"\x03"}  # inputs and outputs modifiable
    return psbt.to_base64(), "PSBT_GLOBAL_TX_MODIFIABLE is not accepted"


def _sequence_zero_v2(wallet: BitcoinWallet) -> tuple[str, str]:
    psbt = _v2(funding_psbt(wallet))
    psbt.inputs[1].sequence = 0
    return psbt.to_base64(), "input 1: a sequence of 0 is not accepted"


def _txid_twice(wallet: BitcoinWallet) -> tuple[str, str]:
    psbt = _v2(funding_psbt(wallet))
    psbt.inputs[0].unknown = {b"\x0e": secrets.token_bytes(32)}  # after its own 0x0e field
    return psbt.to_base64(), "a key appears twice in one map"


def _v2_field_in_v0(wallet: BitcoinWallet) -> tuple[str, str]:
    psbt = funding_psbt(wallet)
    psbt.outputs[0].unknown = {b"\x03": (1_000).to_bytes(8, "little")}  # PSBT_OUT_AMOUNT
    return psbt.to_base64(), "differs from the PSBT's unsigned transaction"


def _sequence_zero_v0(wallet: BitcoinWallet) -> tuple[str, str]:
    psbt = funding_psbt(wallet)
    unsigned = bytes(psbt.tx.serialize())
    tx = Transaction.parse(unsigned)
    tx.vin[0].sequence = 0
    raw = bytes(psbt.serialize()).replace(unsigned, bytes(tx.serialize()), 1)
    return base64.b64encode(raw).decode(), "input sequence of 0"


def _version_1(wallet: BitcoinWallet) -> tuple[str, str]:
    psbt = funding_psbt(wallet)
    psbt.unknown = {b"\xfb": (1).to_bytes(4, "little")}
    return psbt.to_base64(), "only version 0 (BIP-174) and 2 (BIP-370)"


AMBIGUOUS = {
    "v2 without tx version": _without_tx_version,
    "v2 modifiable": _modifiable,
    "v2 sequence 0": _sequence_zero_v2,
    "v2 txid twice": _txid_twice,
    "v2 field in v0": _v2_field_in_v0,
    "v0 sequence 0": _sequence_zero_v0,
    "version 1": _version_1,
}


@pytest.mark.parametrize("case", sorted(AMBIGUOUS))
def test_a_psbt_with_two_readings_is_refused(
    api: Api, installation: Installation, allow_btc: None, case: str
) -> None:
    wallet = bitcoin_wallet(installation)
    text, words = AMBIGUOUS[case](wallet)
    refused(api, installation, {"type": "bitcoin_psbt", "wallet": wallet.name, "psbt": text}, words)
