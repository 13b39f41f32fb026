"""What custody fills in on a connected chain when a body leaves part of `evm` out.

A decoder takes the body's own `evm` fields first and the fill for the rest. A chain without a
node needs every field from the body. On a connected chain, a decoder that finds fields missing
and no fill for them raises `Incomplete` with the transaction's shape, so that intake can ask
the node (gas, fees), assign the nonce under the ledger lock, and decode again with the fill.
The fill is stored with the request: the signer decodes the client's body with it again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from custody.chains import EvmAddress
from custody.intake.errors import InvalidBody
from custody.store.models import Chain, Wallet

EVM_FIELDS = ("nonce", "gas", "max_fee_per_gas", "max_priority_fee_per_gas")


@dataclass(frozen=True)
class EvmFill:
    nonce: int | None = None
    gas: int | None = None
    max_fee_per_gas: int | None = None
    max_priority_fee_per_gas: int | None = None
    executor_nonce: int | None = None
    """A Safe wallet's request: the account nonce of the executor's `execTransaction`."""

    def to_json(self) -> str:
        """Amounts as strings, like every other amount custody stores."""
        return json.dumps(
            {k: str(v) for k, v in asdict(self).items() if v is not None}, sort_keys=True
        )

    @classmethod
    def from_json(cls, text: str | None) -> EvmFill | None:
        if text is None:
            return None
        data = json.loads(text)
        return cls(**{f.name: int(data[f.name]) for f in fields(cls) if f.name in data})


# What a dry run (POST /v1/policy/simulate) decides on where a stored request would be filled.
DRY_RUN_FILL = EvmFill(
    nonce=0, gas=21_000, max_fee_per_gas=0, max_priority_fee_per_gas=0, executor_nonce=0
)


@dataclass(frozen=True)
class SafeShape:
    """A Safe wallet's request: the node estimates the call from the Safe, the executor sends
    it, and the Safe's own nonce is read from the contract."""

    executor: Wallet
    threshold: int


@dataclass(frozen=True)
class TxShape:
    """What the node needs to estimate a transaction: who sends what to whom."""

    wallet: Wallet
    chain: Chain
    to: EvmAddress
    value: int
    data: bytes
    given: EvmFill
    """The fields the body gave itself."""
    safe: SafeShape | None = None

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(name for name in EVM_FIELDS if getattr(self.given, name) is None)


class Incomplete(Exception):
    """The body leaves fields to a connected chain's node, and no fill was given yet."""

    def __init__(self, shape: TxShape) -> None:
        super().__init__(f"evm fields to fill: {', '.join(shape.missing)}")
        self.shape = shape


@dataclass(frozen=True)
class Resolved:
    nonce: int
    gas: int
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


def resolve(shape: TxShape, fill: EvmFill | None) -> Resolved:
    """The body's fields, and the fill's for those it left out."""
    missing = shape.missing
    if not missing:
        given = shape.given
        assert given.nonce is not None
        assert given.gas is not None
        assert given.max_fee_per_gas is not None
        assert given.max_priority_fee_per_gas is not None
        return Resolved(
            given.nonce, given.gas, given.max_fee_per_gas, given.max_priority_fee_per_gas
        )
    if shape.chain.rpc_url is None:
        if shape.given == EvmFill():
            raise InvalidBody(
                f"evm: required (chain {shape.chain.name} has no node: the body gives nonce, "
                "gas, max_fee_per_gas and max_priority_fee_per_gas)"
            )
        raise InvalidBody(
            "; ".join(f"evm.{name}: required" for name in missing)
            + f" (chain {shape.chain.name} has no node to fill them)"
        )
    if fill is None:
        raise Incomplete(shape)
    values = {
        name: getattr(shape.given, name)
        if getattr(shape.given, name) is not None
        else getattr(fill, name)
        for name in EVM_FIELDS
    }
    if any(value is None for value in values.values()):
        raise Incomplete(shape)
    return Resolved(**values)
