"""Chains: build payloads, derive digests and assemble signed results. Pure: no database, no HSM."""

from custody.chains.errors import InvalidPayload, SignatureMismatch
from custody.chains.evm import (
    DecodedCall,
    Eip1559Fields,
    SignedEvmTx,
    TypedMessage,
    UnsignedEvmTx,
    address_from_public_key,
    assemble_signed,
    build_eip1559,
    decode_calldata,
    fields_from_payload,
    format_units,
    recovery_id_for,
    summary,
    typed_data_digest,
    unsigned_from_payload,
    verify_signed,
)
from custody.chains.registry import BUILTIN_CHAINS, Chain, builtin_chain_for, validate_chain_name
from custody.chains.values import Amount, ChainId, Digest, EvmAddress

__all__ = [
    "BUILTIN_CHAINS",
    "Amount",
    "Chain",
    "ChainId",
    "DecodedCall",
    "Digest",
    "Eip1559Fields",
    "EvmAddress",
    "InvalidPayload",
    "SignatureMismatch",
    "SignedEvmTx",
    "TypedMessage",
    "UnsignedEvmTx",
    "address_from_public_key",
    "assemble_signed",
    "build_eip1559",
    "builtin_chain_for",
    "decode_calldata",
    "fields_from_payload",
    "format_units",
    "recovery_id_for",
    "summary",
    "typed_data_digest",
    "unsigned_from_payload",
    "validate_chain_name",
    "verify_signed",
]
