"""Bitcoin: wallet descriptors (P2WPKH, P2WSH sortedmulti) and PSBTs (BIP-174), through embit.

Pure like the EVM codecs: parsing, BIP-143 sighashes, signature checks and finalisation; the HSM
signs the sighashes elsewhere (custody.signing.payloads).
"""

from custody.chains.bitcoin.descriptors import WalletScript, wallet_script
from custody.chains.bitcoin.networks import FeeCap, network_for
from custody.chains.bitcoin.psbt import (
    PAYLOAD_TYPE,
    DecodedPsbt,
    add_signature,
    decode_psbt,
    finalize,
)

__all__ = [
    "PAYLOAD_TYPE",
    "DecodedPsbt",
    "FeeCap",
    "WalletScript",
    "add_signature",
    "decode_psbt",
    "finalize",
    "network_for",
    "wallet_script",
]
