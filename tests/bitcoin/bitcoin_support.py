"""Bitcoin wallets on the test installation's token, PSBTs built with embit, and an independent
check of the signed transaction with python-bitcointx's script interpreter."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any

from bitcointx.core import CTransaction
from bitcointx.core.script import CScript
from bitcointx.core.scripteval import (
    SCRIPT_VERIFY_DERSIG,
    SCRIPT_VERIFY_LOW_S,
    SCRIPT_VERIFY_NULLDUMMY,
    SCRIPT_VERIFY_P2SH,
    SCRIPT_VERIFY_STRICTENC,
    SCRIPT_VERIFY_WITNESS,
    SCRIPT_VERIFY_WITNESS_PUBKEYTYPE,
    VerifyScript,
)
from embit.psbt import PSBT
from embit.script import Script, address_to_scriptpubkey
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from custody.chains.bitcoin import wallet_script
from custody.hsm import Algorithm, Backup
from custody.keys import service as key_service
from custody.store.models import Wallet
from custody.wallets import repository, service
from tests.support.api import Api
from tests.support.installation import Installation

# A regtest P2WPKH address no test wallet owns (from a throwaway key).
ELSEWHERE = "bcrt1qzyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3lgth6c"
FLAGS = {
    SCRIPT_VERIFY_P2SH,
    SCRIPT_VERIFY_WITNESS,
    SCRIPT_VERIFY_DERSIG,
    SCRIPT_VERIFY_LOW_S,
    SCRIPT_VERIFY_STRICTENC,
    SCRIPT_VERIFY_NULLDUMMY,
    SCRIPT_VERIFY_WITNESS_PUBKEYTYPE,
}


@dataclass(frozen=True)
class BitcoinWallet:
    name: str
    address: str
    descriptor: str
    key_labels: tuple[str, ...]


def new_key(installation: Installation, token: str | None = None) -> str:
    """A key on the main token, or on the token labelled `token`."""
    label = f"btc-{installation.backend}-{secrets.token_hex(5)}"
    token = token or installation.settings.hsm_token or ""
    info = installation.runtime.token_for(token).generate_key(label, Algorithm.SECP256K1)
    with installation.runtime.db.write() as session:
        key_service.record_key(
            session,
            info=info,
            token=token,
            backup=Backup.NONE,
            actor="test",
        )
    return label


def bitcoin_wallet(
    installation: Installation,
    owners: int = 1,
    threshold: int | None = None,
    *,
    tokens: tuple[str | None, ...] = (),
) -> BitcoinWallet:
    """`tokens`: the token of each owner key (None: the main token); all on the main one if
    empty."""
    labels = [new_key(installation, token) for token in (tokens or (None,) * owners)]
    with installation.runtime.db.write() as session:
        wallet: Wallet = service.create_bitcoin_wallet(
            session,
            name=f"btc-{secrets.token_hex(5)}",
            chain_name="regtest",
            owner_labels=labels,
            threshold=threshold,
            actor="test",
        )
        assert wallet.descriptor is not None
        return BitcoinWallet(wallet.name, wallet.address, wallet.descriptor, tuple(labels))


def stored_wallet(installation: Installation, name: str) -> Wallet:
    with installation.runtime.db.read() as session:
        return repository.wallet_by_name(session, name)


def funding_psbt(
    wallet: BitcoinWallet,
    *,
    inputs: tuple[int, ...] = (60_000, 50_000),
    send: int = 70_000,
    to: str = ELSEWHERE,
    change: int | None = 39_000,
    also: tuple[tuple[str, int], ...] = (),
) -> PSBT:
    """Spend fake funding UTXOs of `wallet` to `to`, the rest (less a fee) back as change."""
    script = wallet_script(wallet.descriptor)
    vin = [TransactionInput(os.urandom(32), i) for i in range(len(inputs))]
    vout = [TransactionOutput(send, address_to_scriptpubkey(to))]
    vout += [TransactionOutput(amount, address_to_scriptpubkey(other)) for other, amount in also]
    if change is not None:
        vout.append(TransactionOutput(change, Script(script.script_pubkey)))
    psbt = PSBT(Transaction(vin=vin, vout=vout))
    for inp, amount in zip(psbt.inputs, inputs, strict=True):
        inp.witness_utxo = TransactionOutput(amount, Script(script.script_pubkey))
        if script.witness_script is not None:
            inp.witness_script = Script(script.witness_script)
    return psbt


def body(wallet: BitcoinWallet, psbt: PSBT | str) -> dict[str, str]:
    text = psbt if isinstance(psbt, str) else psbt.to_base64()
    return {"type": "bitcoin_psbt", "wallet": wallet.name, "psbt": text}


def verify_independently(raw_hex: str, spent: list[tuple[bytes, int]]) -> CTransaction:
    """Every input against the script and amount it spends, with bitcointx's interpreter."""
    tx = CTransaction.deserialize(bytes.fromhex(raw_hex))
    for index, (script_pubkey, amount) in enumerate(spent):
        VerifyScript(
            CScript(),
            CScript(script_pubkey),
            tx,
            index,
            flags=FLAGS,
            amount=amount,
            witness=tx.wit.vtxinwit[index].scriptWitness,
        )
    return tx


def refused(api: Api, installation: Installation, request_body: dict[str, Any], words: str) -> None:
    """422 problem+json naming `words`, and no request or ledger row written."""
    before = installation.counts()
    response = api.create(request_body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert words in problem["detail"], problem
    assert installation.counts() == before
