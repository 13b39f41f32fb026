"""Request bodies as clients send them, and the validated intents intake builds from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError
from pydantic.config import JsonDict

from custody.chains import Amount, EvmAddress
from custody.chains.values import parse_uint
from custody.intake.errors import InvalidBody
from custody.intake.evmfill import EvmFill


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# For the OpenAPI document only: intake checks these itself, with messages that name the field.
DECIMAL: JsonDict = {"pattern": r"^(0|[1-9][0-9]*)$"}
ADDRESS: JsonDict = {"pattern": r"^0x[0-9a-fA-F]{40}$"}
_BASE_UNITS = "base units as a decimal string; numbers with a fraction or exponent are refused"


_FILLED = "; on a connected chain custody fills it when left out"
REPLACES = (
    "on a connected chain: the id of your signed or broadcast request whose transaction is "
    "stuck; this one signs the same nonce with higher fees (at least 10% more of each)"
)


class EvmFieldsBody(_Strict):
    nonce: StrictInt | None = Field(
        default=None, description="the account nonce, 0 to 2^64 - 1" + _FILLED
    )
    gas: StrictInt | None = Field(default=None, description="gas limit" + _FILLED)
    max_fee_per_gas: StrictStr | None = Field(
        default=None, description="wei, decimal string" + _FILLED, json_schema_extra=DECIMAL
    )
    max_priority_fee_per_gas: StrictStr | None = Field(
        default=None, description="wei, decimal string" + _FILLED, json_schema_extra=DECIMAL
    )

    def given(self) -> EvmFill:
        """The fields the body gives, checked; None for those it leaves out."""
        if self.nonce is not None and not 0 <= self.nonce < 2**64:
            raise InvalidBody("evm.nonce must be between 0 and 2^64 - 1")
        return EvmFill(
            nonce=self.nonce,
            gas=self.gas,
            max_fee_per_gas=None
            if self.max_fee_per_gas is None
            else parse_uint(self.max_fee_per_gas, what="evm.max_fee_per_gas"),
            max_priority_fee_per_gas=None
            if self.max_priority_fee_per_gas is None
            else parse_uint(self.max_priority_fee_per_gas, what="evm.max_priority_fee_per_gas"),
        )


class WithdrawalBody(_Strict):
    """A transfer of the chain's native asset (token transfers are contract calls)."""

    type: Literal["withdrawal"]
    wallet: StrictStr = Field(description="wallet name")
    asset: StrictStr = Field(description="the native asset of the wallet's chain, e.g. ETH")
    amount: StrictStr = Field(description=_BASE_UNITS, json_schema_extra=DECIMAL)
    destination: StrictStr = Field(
        description="0x and 40 hex digits; mixed case must be a valid EIP-55 checksum",
        json_schema_extra=ADDRESS,
    )
    evm: EvmFieldsBody = Field(
        default_factory=EvmFieldsBody,
        description="required on a chain without a node; optional, field by field, on a "
        "connected one",
    )
    replaces: StrictStr | None = Field(default=None, description=REPLACES)


@dataclass(frozen=True)
class WithdrawalIntent:
    wallet: str
    asset: str
    amount: Amount
    destination: EvmAddress
    evm: EvmFill
    replaces: str | None


def parse_withdrawal(data: dict[str, Any]) -> WithdrawalIntent:
    # Parsed before pydantic so the message says "decimal string of base units", not "string".
    amount = Amount.parse(data.get("amount"), positive=True)
    try:
        body = WithdrawalBody.model_validate(data)
    except ValidationError as exc:
        raise InvalidBody(describe_validation_error(exc)) from None
    return WithdrawalIntent(
        wallet=body.wallet,
        asset=body.asset,
        amount=amount,
        destination=EvmAddress.parse(body.destination, what="destination"),
        evm=body.evm.given(),
        replaces=body.replaces,
    )


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        if err["type"] == "extra_forbidden":
            parts.append(f"{loc}: unknown field")
        elif err["type"] == "missing":
            parts.append(f"{loc}: required")
        else:
            parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
