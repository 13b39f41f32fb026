"""The stored payload of a Safe wallet's request: the SafeTx the owners sign, who may sign it,
and the executor transaction that will carry it (`execTransaction`).

Its digest is the EIP-712 `safeTxHash`: approvers approve exactly what the owners sign. The
executor's transaction is not under that digest (it contains the signatures, so it cannot be);
it pays gas only, within the installation's fee caps, which the signer checks again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from custody.chains.errors import InvalidPayload
from custody.chains.evm.eip1559 import Eip1559Fields, UnsignedEvmTx, build_eip1559
from custody.chains.evm.safe import SafeTx
from custody.chains.values import ChainId, Digest, EvmAddress, check_uint

PAYLOAD_TYPE = "evm.safe_tx"
_KEYS = {
    "type",
    "chain_id",
    "safe",
    "to",
    "value",
    "data",
    "operation",
    "nonce",
    "safe_tx_gas",
    "base_gas",
    "gas_price",
    "gas_token",
    "refund_receiver",
    "threshold",
    "owners",
    "executor",
}
_EXECUTOR_KEYS = {"address", "key", "nonce", "gas", "max_fee_per_gas", "max_priority_fee_per_gas"}
# What `execTransaction` costs beyond the estimate of the call it makes: signature checks
# (ecrecover and a cold owner read each), the nonce write (20,000 the first time), the event,
# and, for a call that sends value, the CALL's 9,000 plus 25,000 for a new account, which a
# transaction-level estimate does not include. Measured on anvil: 115,092 for the first 1 ETH
# transfer of a 2-of-3 Safe to a fresh address (the estimate said 21,000); unused gas is refunded.
EXEC_OVERHEAD_GAS = 100_000
PER_SIGNATURE_GAS = 10_000


@dataclass(frozen=True)
class Owner:
    address: EvmAddress
    key: str | None
    """The label of custody's key for this owner; None for an owner custody does not hold."""


@dataclass(frozen=True)
class Executor:
    address: EvmAddress
    key: str
    nonce: int
    gas: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


@dataclass(frozen=True)
class SafeRequest:
    chain_id: int
    safe: EvmAddress
    tx: SafeTx
    threshold: int
    owners: tuple[Owner, ...]
    """Sorted by address: the order the contract wants the signatures in."""
    executor: Executor

    def __post_init__(self) -> None:
        ChainId(self.chain_id)
        addresses = [bytes(owner.address) for owner in self.owners]
        if addresses != sorted(set(addresses)):
            raise InvalidPayload("Safe owners must be distinct and sorted by address")
        if not 1 <= self.threshold <= len(self.owners):
            raise InvalidPayload("Safe threshold must be between 1 and the number of owners")
        if self.executor.address in {owner.address for owner in self.owners}:
            raise InvalidPayload("the executor must not be an owner")

    @property
    def digest(self) -> Digest:
        digest: Digest = self.tx.hash(self.chain_id, self.safe)
        return digest

    def executor_tx(self, signatures: bytes) -> UnsignedEvmTx:
        ex = self.executor
        return build_eip1559(
            Eip1559Fields(
                chain_id=self.chain_id,
                nonce=ex.nonce,
                to=self.safe,
                value=0,
                gas=ex.gas,
                max_fee_per_gas=ex.max_fee_per_gas,
                max_priority_fee_per_gas=ex.max_priority_fee_per_gas,
                data=self.tx.exec_calldata(signatures),
            )
        )

    @property
    def max_fee(self) -> int:
        return self.executor.gas * self.executor.max_fee_per_gas

    def as_payload(self) -> dict[str, Any]:
        tx = self.tx
        return {
            "type": PAYLOAD_TYPE,
            "chain_id": str(self.chain_id),
            "safe": str(self.safe),
            "to": str(tx.to),
            "value": str(tx.value),
            "data": "0x" + tx.data.hex(),
            "operation": tx.operation,
            "nonce": str(tx.nonce),
            "safe_tx_gas": str(tx.safe_tx_gas),
            "base_gas": str(tx.base_gas),
            "gas_price": str(tx.gas_price),
            "gas_token": str(tx.gas_token),
            "refund_receiver": str(tx.refund_receiver),
            "threshold": self.threshold,
            "owners": [{"address": str(o.address), "key": o.key} for o in self.owners],
            "executor": {
                "address": str(self.executor.address),
                "key": self.executor.key,
                "nonce": str(self.executor.nonce),
                "gas": str(self.executor.gas),
                "max_fee_per_gas": str(self.executor.max_fee_per_gas),
                "max_priority_fee_per_gas": str(self.executor.max_priority_fee_per_gas),
            },
        }


def executor_gas(inner_estimate: int, threshold: int) -> int:
    """Gas for `execTransaction` around a call the node estimated at `inner_estimate`."""
    return inner_estimate + EXEC_OVERHEAD_GAS + PER_SIGNATURE_GAS * threshold


def from_payload(payload: object) -> SafeRequest:
    """Parse a stored payload strictly, and refuse any spelling `as_payload` would not give."""
    if not isinstance(payload, dict) or set(payload) != _KEYS or payload["type"] != PAYLOAD_TYPE:
        raise InvalidPayload(f"Safe payload must have exactly {sorted(_KEYS)}")
    owners = payload["owners"]
    executor = payload["executor"]
    if not isinstance(owners, list) or not isinstance(executor, dict):
        raise InvalidPayload("Safe payload owners must be a list and executor an object")
    if set(executor) != _EXECUTOR_KEYS:
        raise InvalidPayload(f"Safe payload executor must have exactly {sorted(_EXECUTOR_KEYS)}")
    data = str(payload["data"])
    if not data.startswith("0x"):
        raise InvalidPayload("Safe payload data must be 0x-prefixed hex")
    parsed = SafeRequest(
        chain_id=_uint(payload["chain_id"], "chain_id"),
        safe=EvmAddress.parse(payload["safe"]),
        tx=SafeTx(
            to=EvmAddress.parse(payload["to"]),
            value=_uint(payload["value"], "value"),
            data=bytes.fromhex(data[2:]),
            operation=check_uint(payload["operation"], what="operation", bits=8),
            nonce=_uint(payload["nonce"], "nonce"),
            safe_tx_gas=_uint(payload["safe_tx_gas"], "safe_tx_gas"),
            base_gas=_uint(payload["base_gas"], "base_gas"),
            gas_price=_uint(payload["gas_price"], "gas_price"),
            gas_token=EvmAddress.parse(payload["gas_token"]),
            refund_receiver=EvmAddress.parse(payload["refund_receiver"]),
        ),
        threshold=check_uint(payload["threshold"], what="threshold", bits=8),
        owners=tuple(_owner(item) for item in owners),
        executor=Executor(
            address=EvmAddress.parse(executor["address"]),
            key=str(executor["key"]),
            nonce=_uint(executor["nonce"], "executor.nonce"),
            gas=_uint(executor["gas"], "executor.gas"),
            max_fee_per_gas=_uint(executor["max_fee_per_gas"], "executor.max_fee_per_gas"),
            max_priority_fee_per_gas=_uint(
                executor["max_priority_fee_per_gas"], "executor.max_priority_fee_per_gas"
            ),
        ),
    )
    if parsed.as_payload() != payload:
        raise InvalidPayload("Safe payload is not in canonical form")
    return parsed


def _owner(item: object) -> Owner:
    if not isinstance(item, dict) or set(item) != {"address", "key"}:
        raise InvalidPayload("each Safe owner must be exactly {address, key}")
    key = item["key"]
    if key is not None and not isinstance(key, str):
        raise InvalidPayload("a Safe owner's key is a label or null")
    return Owner(EvmAddress.parse(item["address"]), key)


def _uint(value: object, what: str) -> int:
    if not isinstance(value, str) or not value.isdigit():
        raise InvalidPayload(f"Safe payload {what} must be a decimal string")
    return check_uint(int(value), what=what, bits=256)
