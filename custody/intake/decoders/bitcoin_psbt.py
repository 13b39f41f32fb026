"""Bitcoin PSBTs (BIP-174) spending a P2WPKH or M-of-N P2WSH wallet.

The policy sees BTC leaving the wallet: `amount` is what every destination receives together
(outputs back to the wallet's own script are change, not counted), `destinations` every address
paid (a batch is judged on each, custody.policy.allowlists), `fee` what miners get and
`fee_rate` that per virtual byte. Approvers sign
a digest of the unsigned txid and every input's BIP-143 sighash (custody.chains.bitcoin), which
commits to the whole transaction and to each input's amount.
"""

from __future__ import annotations

from typing import Any, Literal

import coincurve
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from custody.chains import Amount
from custody.chains.bitcoin import PAYLOAD_TYPE, decode_psbt, wallet_script
from custody.chains.bitcoin.psbt import DecodedPsbt, outpoint
from custody.chains.errors import InvalidPayload
from custody.intake.draft import Draft
from custody.intake.errors import InvalidBody
from custody.intake.lookups import Lookups
from custody.intake.schemas import describe_validation_error


class BitcoinPsbtBody(BaseModel):
    """A PSBT (BIP-174 version 0, or BIP-370 version 2) for a Bitcoin wallet to sign."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    type: Literal["bitcoin_psbt"]
    wallet: StrictStr = Field(description="wallet name (a wallet on a Bitcoin chain)")
    psbt: StrictStr = Field(description="base64 PSBT, version 0 or 2", min_length=1)
    replaces: StrictStr | None = Field(
        default=None,
        description=(
            "the id of your signed request of this wallet whose transaction this one replaces "
            "(BIP-125): it spends at least one of its coins and pays a higher fee and fee rate"
        ),
    )


def decode_bitcoin_psbt(lookups: Lookups, data: dict[str, Any]) -> Draft:
    try:
        body = BitcoinPsbtBody.model_validate(data)
    except ValidationError as exc:
        raise InvalidBody(f"bitcoin_psbt request: {describe_validation_error(exc)}") from None
    wallet = lookups.wallet(body.wallet)
    chain = lookups.chain(wallet.chain_id)
    if chain.kind != "bitcoin" or wallet.descriptor is None:
        raise InvalidBody(f"wallet {wallet.name} is not a Bitcoin wallet")
    script = wallet_script(wallet.descriptor)
    try:
        decoded = decode_psbt(body.psbt, script, chain.name)
    except InvalidPayload as exc:
        raise InvalidBody(exc.message) from None
    if not decoded.destinations:
        raise InvalidBody("psbt: pays nothing away (only change); nothing to approve")
    # In output order, each once: destination rules judge every one (custody.policy.allowlists).
    addresses = tuple(dict.fromkeys(d.address for d in decoded.destinations))
    destination = addresses[0]
    owners = [_owner_label(lookups, key) for key in script.owners]
    payload = {
        "type": PAYLOAD_TYPE,
        "chain": chain.name,
        "descriptor": wallet.descriptor,
        "owners": owners,
        "psbt": decoded.canonical,
    }
    return Draft(
        type="bitcoin_psbt",
        wallet=wallet,
        chain=chain,
        asset=chain.native_asset,
        amount=Amount(decoded.sent),
        destination=destination,
        payload=payload,
        digest="0x" + decoded.digest.hex(),
        summary=_summary(decoded, wallet.name, addresses),
        fee=Amount(decoded.fee),
        fee_rate=Amount(decoded.fee_rate),
        destinations=addresses if len(addresses) > 1 else (),
        spends=decoded.spends,
        replaces=body.replaces,
        details=_details(decoded, script.threshold),
    )


def _owner_label(lookups: Lookups, compressed_key: bytes) -> str | None:
    """The label of the owner key custody holds, or None for an external cosigner's key (or one
    of custody's that was retired: destroyed on its token, it signs nothing more)."""
    uncompressed = coincurve.PublicKey(compressed_key).format(compressed=False).hex()
    key = lookups.key_by_public_key(uncompressed)
    return None if key is None or key.retired_at is not None else key.label


def _summary(decoded: DecodedPsbt, wallet: str, addresses: tuple[str, ...]) -> str:
    return (
        f"send {decoded.sent} sats ({_btc(decoded.sent)} BTC) from {wallet} to "
        f"{', '.join(addresses)}, "
        f"{decoded.change} sats change, fee {decoded.fee} sats (~{decoded.fee_rate} sat/vB); "
        f"unsigned txid {decoded.txid}"
    )


def _btc(sats: int) -> str:
    return f"{sats // 100_000_000}.{sats % 100_000_000:08d}"


def _details(decoded: DecodedPsbt, threshold: int) -> dict[str, Any]:
    return {
        "txid": decoded.txid,
        "inputs": [
            {
                "outpoint": outpoint(bytes(vin.txid), vin.vout),
                "amount": str(inp.witness_utxo.value),
            }
            for vin, inp in zip(decoded.psbt.tx.vin, decoded.psbt.inputs, strict=True)
        ],
        "destinations": [
            {"address": d.address, "amount": str(d.amount)} for d in decoded.destinations
        ],
        "change": str(decoded.change),
        "fee": str(decoded.fee),
        "fee_rate_sat_per_vb": str(decoded.fee_rate),
        "threshold": threshold,
    }
