"""Contract calls: an EIP-1559 transaction carrying calldata, judged by what the calldata does."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from custody.chains import Amount, EvmAddress, InvalidPayload, build_eip1559, decode_calldata
from custody.chains.evm.eip1559 import Eip1559Fields
from custody.chains.values import describe, parse_uint
from custody.intake.decoders import safe
from custody.intake.decoders.call_meaning import call_details, meaning
from custody.intake.decoders.withdrawal import evm_chain_id
from custody.intake.draft import Draft
from custody.intake.errors import InvalidBody
from custody.intake.evmfill import EvmFill, TxShape, resolve
from custody.intake.lookups import Lookups
from custody.intake.schemas import (
    ADDRESS,
    DECIMAL,
    REPLACES,
    EvmFieldsBody,
    describe_validation_error,
)


class ContractCallBody(BaseModel):
    """An EIP-1559 transaction carrying calldata, judged by what the calldata does."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    type: Literal["contract_call"]
    wallet: StrictStr
    to: StrictStr = Field(description="the contract", json_schema_extra=ADDRESS)
    data: StrictStr = Field(
        description="calldata: 0x, a 4-byte selector and its arguments",
        json_schema_extra={"pattern": r"^0x([0-9a-fA-F]{2}){4,}$"},
    )
    value: StrictStr = Field(description="wei sent with the call", json_schema_extra=DECIMAL)
    evm: EvmFieldsBody = Field(default_factory=EvmFieldsBody)
    replaces: StrictStr | None = Field(default=None, description=REPLACES)
    operation: StrictInt | None = Field(
        default=None,
        description="Safe wallets only: 0 call (the default), 1 delegatecall (denied unless a "
        "rule says allow_delegatecall)",
    )


def _calldata(text: str) -> bytes:
    # Either case on the way in; the payload stores lower-case hex, its one canonical spelling.
    if not text.startswith("0x") or len(text) % 2:
        raise InvalidBody(f"data must be 0x followed by whole bytes of hex, got {describe(text)}")
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise InvalidBody(f"data is not hex: {describe(text)}") from None


def decode_contract_call(lookups: Lookups, data: dict[str, Any], fill: EvmFill | None) -> Draft:
    # Amounts get our own message first: pydantic would say "string" where a person needs
    # "decimal string of base units" (and a float is refused here, never rounded).
    parse_uint(data.get("value"), what="value")
    try:
        body = ContractCallBody.model_validate(data)
    except ValidationError as exc:
        raise InvalidBody(f"contract_call request: {describe_validation_error(exc)}") from None
    given = body.evm.given()
    to = EvmAddress.parse(body.to, what="to")
    calldata = _calldata(body.data)
    if len(calldata) < 4:
        raise InvalidPayload(
            "data must start with a 4-byte method selector; a plain transfer is a withdrawal"
        )
    value = parse_uint(body.value, what="value")
    call = decode_calldata(calldata)

    wallet = lookups.wallet(body.wallet)
    chain = lookups.chain(wallet.chain_id)
    token = lookups.asset_by_contract(chain.id, str(to))
    what = meaning(call, token=token, chain=chain, to=str(to), value=value)
    details: dict[str, Any] = {"contract": str(to), **call_details(call)}
    if what.judged_as != "contract_call":
        details["judged_as"] = what.judged_as
    if token is not None:
        details["token"] = {"symbol": token.symbol, "decimals": token.decimals}
    judged = Draft(
        type="contract_call",
        wallet=wallet,
        chain=chain,
        asset=what.asset,
        amount=Amount(what.amount),
        destination=what.destination,
        payload={},
        digest="",
        summary="",
        contract=str(to),
        method_selector=call.selector,
        call_flags=call.flags,
        details=details,
        replaces=body.replaces,
    )

    row = lookups.safe(wallet.id)
    if row is None and body.operation is not None:
        raise InvalidBody(f"operation: only for Safe wallets, and {wallet.name} is not one")
    if row is not None:
        operation = safe.CALL if body.operation is None else body.operation
        if operation not in (safe.CALL, safe.DELEGATECALL):
            raise InvalidBody(f"operation must be 0 (call) or 1 (delegatecall), got {operation}")
        built = safe.build(
            lookups,
            wallet=wallet,
            chain=chain,
            row=row,
            call=safe.SafeCall(to, value, calldata, operation),
            given=given,
            fill=fill,
            replaces=body.replaces,
        )
        request = built.request
        return replace(
            judged,
            payload=request.as_payload(),
            digest=request.digest.prefixed(),
            summary=f"{what.action} via contract {to}: {built.summary}",
            nonce=request.tx.nonce,
            max_fee=request.max_fee,
            call_flags=call.flags | built.flags,
            details={**details, "safe_operation": operation},
            executor_wallet_id=built.executor.id,
            executor_nonce=request.executor.nonce,
        )

    evm = resolve(TxShape(wallet, chain, to, value, calldata, given), fill)
    unsigned = build_eip1559(
        Eip1559Fields(
            chain_id=evm_chain_id(chain),
            nonce=evm.nonce,
            to=to,
            value=value,
            gas=evm.gas,
            max_fee_per_gas=evm.max_fee_per_gas,
            max_priority_fee_per_gas=evm.max_priority_fee_per_gas,
            data=calldata,
        )
    )
    return replace(
        judged,
        payload=unsigned.payload,
        digest=unsigned.digest.prefixed(),
        summary=(
            f"{what.action} via contract {to} on chain {chain.evm_chain_id}, nonce {evm.nonce}"
        ),
        nonce=evm.nonce,
        max_fee=unsigned.fields.gas * unsigned.fields.max_fee_per_gas,
    )
