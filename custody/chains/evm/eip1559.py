"""EIP-1559 (type 2) transactions: validated fields, the stored payload and the signing digest.

The payload is fixed at intake and stored; the signer rebuilds the transaction from it with
`unsigned_from_payload` and compares digests, so what is approved is what is signed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rlp  # type: ignore[import-untyped]  # pyrlp ships no type information
from eth_utils.crypto import keccak

from custody.chains.errors import InvalidPayload
from custody.chains.values import ChainId, Digest, EvmAddress, check_uint, describe, parse_uint
from custody.errors import CustodyError

PAYLOAD_TYPE = "evm.eip1559"
TX_TYPE = 2
MIN_GAS = 21_000
MAX_GAS = 30_000_000
# Geth refuses transactions above 128 KiB; a larger payload could never be broadcast.
MAX_DATA_BYTES = 128 * 1024

_PAYLOAD_KEYS = (
    "type",
    "chain_id",
    "nonce",
    "to",
    "value",
    "gas",
    "max_fee_per_gas",
    "max_priority_fee_per_gas",
    "data",
)
_DECIMAL = "a decimal string"
_HEX_DATA = re.compile(r"0x(?:[0-9a-f]{2})*")


@dataclass(frozen=True, slots=True)
class Eip1559Fields:
    chain_id: int
    nonce: int
    to: EvmAddress
    value: int
    gas: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int
    data: bytes = b""

    def __post_init__(self) -> None:
        ChainId(self.chain_id)
        check_uint(self.nonce, what="nonce", bits=64)
        if not isinstance(self.to, EvmAddress):
            raise InvalidPayload(f"to must be an EvmAddress, got {describe(self.to)}")
        check_uint(self.value, what="value", bits=256)
        check_uint(self.gas, what="gas", bits=64)
        if not MIN_GAS <= self.gas <= MAX_GAS:
            raise InvalidPayload(f"gas must be between {MIN_GAS} and {MAX_GAS}, got {self.gas}")
        check_uint(self.max_fee_per_gas, what="max_fee_per_gas", bits=256)
        check_uint(self.max_priority_fee_per_gas, what="max_priority_fee_per_gas", bits=256)
        if self.max_priority_fee_per_gas > self.max_fee_per_gas:
            raise InvalidPayload("max_priority_fee_per_gas must not exceed max_fee_per_gas")
        # bytes, not bytearray: a mutable buffer would let the fields change after approval.
        if type(self.data) is not bytes:
            raise InvalidPayload(f"data must be bytes, got {describe(self.data)}")
        if len(self.data) > MAX_DATA_BYTES:
            raise InvalidPayload(f"data must be at most {MAX_DATA_BYTES} bytes")

    def as_eth_account_dict(self) -> dict[str, Any]:
        """The transaction in eth-account's dictionary form (camelCase, checksummed `to`)."""
        return {
            "type": TX_TYPE,
            "chainId": self.chain_id,
            "nonce": self.nonce,
            "to": str(self.to),
            "value": self.value,
            "gas": self.gas,
            "maxFeePerGas": self.max_fee_per_gas,
            "maxPriorityFeePerGas": self.max_priority_fee_per_gas,
            "data": self.data,
            "accessList": [],
        }

    def as_payload(self) -> dict[str, str]:
        """The canonical JSON form: stored, shown to approvers and rebuilt by the signer."""
        return {
            "type": PAYLOAD_TYPE,
            "chain_id": str(self.chain_id),
            "nonce": str(self.nonce),
            "to": str(self.to),
            "value": str(self.value),
            "gas": str(self.gas),
            "max_fee_per_gas": str(self.max_fee_per_gas),
            "max_priority_fee_per_gas": str(self.max_priority_fee_per_gas),
            "data": "0x" + self.data.hex(),
        }


@dataclass(frozen=True, slots=True)
class UnsignedEvmTx:
    fields: Eip1559Fields
    digest: Digest
    unsigned_bytes: bytes

    @property
    def payload(self) -> dict[str, str]:
        # A fresh dict each time: a shared one could be mutated after the digest was taken.
        return self.fields.as_payload()


def _unsigned_rlp(fields: Eip1559Fields) -> bytes:
    """0x02 || rlp([chainId, nonce, tip, maxFee, gas, to, value, data, accessList])."""
    items = [
        fields.chain_id,
        fields.nonce,
        fields.max_priority_fee_per_gas,
        fields.max_fee_per_gas,
        fields.gas,
        fields.to.value,
        fields.value,
        fields.data,
        [],
    ]
    encoded: bytes = rlp.encode(items)
    return bytes([TX_TYPE]) + encoded


def load_encoder() -> None:
    """Import eth-account's encoder now. Server processes call this as they start, so that
    their first EVM request does not wait the half second of the import (it did, and it showed
    as the worst latency of a fresh server)."""
    from eth_account.typed_transactions.typed_transaction import TypedTransaction  # noqa: F401


# Pure, and the signer builds each request's transaction three times (its evidence, its digest
# and its signing), intake once more: built once per process for the same fields.
@functools.lru_cache(maxsize=1024)
def build_eip1559(fields: Eip1559Fields) -> UnsignedEvmTx:
    """The unsigned transaction and its signing digest, computed two ways that must agree."""
    # eth-account imports eth-keyfile and py_ecc (0.5 s): loaded by the first request that needs
    # it, so that `custody --help` and commands that build no transaction start quickly.
    from eth_account.typed_transactions.typed_transaction import TypedTransaction

    digest = Digest(TypedTransaction.from_dict(fields.as_eth_account_dict()).hash())
    unsigned_bytes = _unsigned_rlp(fields)
    if keccak(unsigned_bytes) != digest.value:
        # Two encoders disagreeing means one of them is wrong; signing either would be a guess.
        raise CustodyError("EIP-1559 encoders disagree on the signing digest", status=500)
    return UnsignedEvmTx(fields=fields, digest=digest, unsigned_bytes=unsigned_bytes)


def _parse_data(text: object) -> bytes:
    if not isinstance(text, str) or not _HEX_DATA.fullmatch(text):
        raise InvalidPayload(
            f"data must be 0x followed by an even number of lowercase hex digits, "
            f"got {describe(text)}"
        )
    return bytes.fromhex(text[2:])


def fields_from_payload(payload: object) -> Eip1559Fields:
    """Parse a stored payload strictly: exactly the canonical keys, each in canonical form."""
    if not isinstance(payload, Mapping):
        raise InvalidPayload(f"payload must be an object, got {describe(payload)}")
    missing = [key for key in _PAYLOAD_KEYS if key not in payload]
    unknown = sorted(str(key) for key in payload if key not in _PAYLOAD_KEYS)
    if missing or unknown:
        raise InvalidPayload(f"payload fields do not match: missing {missing}, unknown {unknown}")
    if payload["type"] != PAYLOAD_TYPE:
        raise InvalidPayload(
            f"payload type must be {PAYLOAD_TYPE!r}, got {describe(payload['type'])}"
        )
    fields = Eip1559Fields(
        chain_id=parse_uint(payload["chain_id"], what="chain_id", bits=64, expected=_DECIMAL),
        nonce=parse_uint(payload["nonce"], what="nonce", bits=64, expected=_DECIMAL),
        to=EvmAddress.parse(payload["to"], what="to"),
        value=parse_uint(payload["value"], what="value"),
        gas=parse_uint(payload["gas"], what="gas", bits=64, expected=_DECIMAL),
        max_fee_per_gas=parse_uint(payload["max_fee_per_gas"], what="max_fee_per_gas"),
        max_priority_fee_per_gas=parse_uint(
            payload["max_priority_fee_per_gas"], what="max_priority_fee_per_gas"
        ),
        data=_parse_data(payload["data"]),
    )
    # One transaction, one spelling: approvers saw exactly the stored text, so a payload that
    # would be re-rendered differently (say, a lowercase `to`) was not produced by us.
    for key, canonical in fields.as_payload().items():
        if payload[key] != canonical:
            raise InvalidPayload(f"payload field {key} is not in canonical form ({canonical})")
    return fields


def unsigned_from_payload(payload: object) -> UnsignedEvmTx:
    """Rebuild a stored payload and re-derive its digest for comparison with the approved one."""
    return build_eip1559(fields_from_payload(payload))
