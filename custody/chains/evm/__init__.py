"""EVM payloads: addresses, EIP-1559 transactions, calldata, EIP-712, signatures."""

from custody.chains.evm.addresses import address_from_public_key
from custody.chains.evm.calldata import UNLIMITED_APPROVAL, DecodedCall, decode_calldata
from custody.chains.evm.eip712 import TypedMessage, typed_data_digest
from custody.chains.evm.eip1559 import (
    PAYLOAD_TYPE,
    Eip1559Fields,
    UnsignedEvmTx,
    build_eip1559,
    fields_from_payload,
    unsigned_from_payload,
)
from custody.chains.evm.signatures import (
    SignedEvmTx,
    assemble_signed,
    recovery_id_for,
    verify_signed,
)
from custody.chains.evm.summary import format_units, summary

__all__ = [
    "PAYLOAD_TYPE",
    "UNLIMITED_APPROVAL",
    "DecodedCall",
    "Eip1559Fields",
    "SignedEvmTx",
    "TypedMessage",
    "UnsignedEvmTx",
    "address_from_public_key",
    "assemble_signed",
    "build_eip1559",
    "decode_calldata",
    "fields_from_payload",
    "format_units",
    "recovery_id_for",
    "summary",
    "typed_data_digest",
    "unsigned_from_payload",
    "verify_signed",
]
