"""A coordinator's side of a Bitcoin withdrawal: a PSBT made with embit (the library behind
Specter, SeedSigner and Krux) from the wallet's output descriptor, sent to custody with the SDK.

    python examples/bitcoin_psbt.py CLIENT_ID_OR_FILE PRIVATE_KEY.pem WALLET DESCRIPTOR \\
        --network regtest --coin TXID:VOUT:SATS [--coin …] --pay ADDRESS:SATS [--pay …] \\
        --fee SATS [--url http://127.0.0.1:8000]

DESCRIPTOR is what `custody wallets list --json` shows for WALLET (with its checksum). Each coin
is one the wallet's script holds (a watch-only wallet following the descriptor finds them); what
the coins hold beyond the payments and the fee goes back to the wallet as change. Prints the
request custody answers and, once signed, the transaction to broadcast (`sendrawtransaction`).
Needs `embit` and custody's SDK (`custody.client`: httpx, PyJWT, cryptography).
"""

from __future__ import annotations

import argparse
import json

from embit.descriptor import Descriptor
from embit.networks import NETWORKS
from embit.psbt import PSBT
from embit.script import address_to_scriptpubkey
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from custody.client import Client, CustodyAPIError


def build_psbt(
    descriptor: str,
    coins: list[tuple[str, int, int]],
    payments: list[tuple[str, int]],
    fee: int,
) -> PSBT:
    """Spend `coins` (txid, vout, sats) of the descriptor's script: `payments` (address,
    sats), the fee, and the rest back to the same script as change."""
    wallet = Descriptor.from_string(descriptor)
    script = wallet.script_pubkey()
    change = sum(sats for _, _, sats in coins) - sum(sats for _, sats in payments) - fee
    if change < 0:
        raise SystemExit("the coins do not cover the payments and the fee")
    vin = [TransactionInput(bytes.fromhex(txid), vout) for txid, vout, _ in coins]
    vout = [TransactionOutput(sats, address_to_scriptpubkey(addr)) for addr, sats in payments]
    if change:
        vout.append(TransactionOutput(change, script))
    psbt = PSBT(Transaction(vin=vin, vout=vout))
    for inp, (_, _, sats) in zip(psbt.inputs, coins, strict=True):
        # custody signs only inputs that say what they spend (BIP-143 needs the amount)
        inp.witness_utxo = TransactionOutput(sats, script)
        if wallet.is_segwit and wallet.witness_script() is not None:
            inp.witness_script = wallet.witness_script()
    return psbt


def _coin(text: str) -> tuple[str, int, int]:
    txid, vout, sats = text.split(":")
    return txid, int(vout), int(sats)


def _payment(text: str) -> tuple[str, int]:
    address, sats = text.rsplit(":", 1)
    return address, int(sats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("client_id")
    parser.add_argument("private_key")
    parser.add_argument("wallet")
    parser.add_argument("descriptor")
    parser.add_argument("--network", default="regtest", choices=sorted(NETWORKS))
    parser.add_argument("--coin", action="append", type=_coin, required=True)
    parser.add_argument("--pay", action="append", type=_payment, required=True)
    parser.add_argument("--fee", type=int, required=True)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    psbt = build_psbt(args.descriptor, args.coin, args.pay, args.fee)
    body = {"type": "bitcoin_psbt", "wallet": args.wallet, "psbt": psbt.to_base64()}
    with Client.from_files(args.url, args.client_id, args.private_key) as custody:
        try:
            created = custody.create(body)
        except CustodyAPIError as refused:
            raise SystemExit(f"{refused.status} {refused.title}: {refused.detail}") from None
        print(json.dumps(created.json, indent=2))
        current = custody.wait(created.id, timeout=30, until="signed")
        print(json.dumps(current.json, indent=2))


if __name__ == "__main__":
    main()
