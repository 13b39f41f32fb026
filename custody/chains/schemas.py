"""Stored payloads (`Request.payload`) as typed JSON: what was approved and will be signed.

Read back through `read_payload`, the column's one reader. Fields are declared in sorted order
because the column is written with sorted keys: the API shows the object as it was stored.
A payload type without a model here fails to read, as the signer fails closed on a payload type
it has no handler for.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from custody.jsonshape import DecimalString, JsonModel


class Eip1559Payload(JsonModel):
    """An EIP-1559 (type 2) transaction; numbers as decimal strings, `data` as 0x hex."""

    chain_id: DecimalString
    data: str = Field(pattern=r"^0x([0-9a-f]{2})*$")
    gas: DecimalString
    max_fee_per_gas: DecimalString
    max_priority_fee_per_gas: DecimalString
    nonce: DecimalString
    to: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$", description="EIP-55 checksummed")
    type: Literal["evm.eip1559"]
    value: DecimalString


class Eip712Payload(JsonModel):
    """EIP-712 typed data (a trade order) in canonical form, for a registered venue."""

    type: Literal["evm.eip712"]
    typed_data: dict[str, Any] = Field(description="{types, primaryType, domain, message}")
    venue: str


class Eip191Payload(JsonModel):
    """A `personal_sign` message (EIP-191 version 0x45)."""

    message: str
    type: Literal["evm.eip191"]


class BitcoinPsbtPayload(JsonModel):
    """A PSBT (BIP-174, base64, as custody re-serialised it) for a Bitcoin wallet's descriptor;
    `owners` names the label of each descriptor key custody holds (null: an external cosigner)."""

    chain: str
    descriptor: str
    owners: list[str | None]
    psbt: str
    type: Literal["bitcoin.psbt"]


class SafeOwnerPayload(JsonModel):
    address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    key: str | None = Field(description="custody's key for this owner; null: not held here")


class SafeExecutorPayload(JsonModel):
    """The executor wallet's `execTransaction`: it pays gas, within the installation's caps."""

    address: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    gas: DecimalString
    key: str
    max_fee_per_gas: DecimalString
    max_priority_fee_per_gas: DecimalString
    nonce: DecimalString


class SafeTxPayload(JsonModel):
    """A Safe v1.4.1 transaction (SafeTx) for a Safe wallet; the digest is its `safeTxHash`.
    `owners` sorted by address; refunds are never used (gas fields zero)."""

    base_gas: DecimalString
    chain_id: DecimalString
    data: str = Field(pattern=r"^0x([0-9a-f]{2})*$")
    executor: SafeExecutorPayload
    gas_price: DecimalString
    gas_token: str
    nonce: DecimalString = Field(description="the Safe's nonce")
    operation: int = Field(ge=0, le=1, description="0 call, 1 delegatecall")
    owners: list[SafeOwnerPayload]
    refund_receiver: str
    safe: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    safe_tx_gas: DecimalString
    threshold: int
    to: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    type: Literal["evm.safe_tx"]
    value: DecimalString


# The tags are the PAYLOAD_TYPE of each payload's builder (eip1559, typed data, eip191).
TransactionPayload = Annotated[
    Eip1559Payload | Eip712Payload | Eip191Payload | BitcoinPsbtPayload | SafeTxPayload,
    Field(discriminator="type"),
]
_PAYLOAD: TypeAdapter[TransactionPayload] = TypeAdapter(TransactionPayload)


def read_payload(column: str) -> TransactionPayload:
    return _PAYLOAD.validate_json(column)
