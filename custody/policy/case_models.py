"""The parts of a policy test case: facts, context and expectation, as written in YAML.

Unlike policy files, `null` is meaningful here (`destination: null`, `rule: null` for the
default deny), so these models do not refuse nulls; they refuse unknown keys like the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from custody.chains.bitcoin.addresses import ListedAddress, SegwitAddress
from custody.chains.errors import InvalidPayload
from custody.chains.evm.calldata import DecodedCall, decode_calldata
from custody.chains.values import Amount, EvmAddress
from custody.policy.calls import CallFlag, Selector
from custody.policy.context import EvaluationContext
from custody.policy.decision import Decision
from custody.policy.facts import RequestFacts
from custody.policy.prices import PriceKey, ReferencePrices, UsdAmount, UsdPrice
from custody.policy.values import DurationSeconds, Name, RequestType


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def model_validate_with_loc(cls, data: object, loc: tuple[str | int, ...]) -> Self:
        """Validate, reporting errors at `loc` inside the file (the data was merged from two)."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            details = [
                InitErrorDetails(
                    # Braces would be read as template fields by PydanticCustomError.
                    type=PydanticCustomError(
                        e["type"], e["msg"].replace("{", "(").replace("}", ")")
                    ),
                    loc=(*loc, *e["loc"]),
                    input=None,
                )
                for e in error.errors(include_url=False)
            ]
            raise ValidationError.from_exception_data(cls.__name__, details) from None


def _literal(message: str) -> str:
    # PydanticCustomError reads braces as template fields; a message is not a template.
    return message.replace("{", "(").replace("}", ")")


def _text(address: EvmAddress | SegwitAddress | None) -> str | None:
    # Facts hold destinations as text: other chains' addresses are not EVM addresses.
    return None if address is None else str(address)


class CaseFacts(_Strict):
    type: RequestType
    wallet: Name
    chain: Name
    asset: Name
    amount: Amount
    destination: ListedAddress | None = None
    client: Name | None = None
    contract: EvmAddress | None = None
    method: Selector | None = None
    flags: tuple[CallFlag, ...] = ()
    calldata: str | None = None
    venue: Name | None = None
    primary_type: Name | None = None
    wallet_address: EvmAddress | None = None
    receiver: EvmAddress | None = None
    receives_asset: Name | None = None
    receives_amount: Amount | None = None
    fee: Amount | None = None
    fee_rate: Amount | None = None
    destinations: tuple[ListedAddress, ...] = ()
    """A batch: every address paid (`destination` is then the first, or left out)."""

    @model_validator(mode="after")
    def _calldata_decodes(self) -> CaseFacts:
        if self.calldata is None:
            return self
        if self.method is not None or self.flags:
            raise PydanticCustomError("calldata", "give calldata or method/flags, not both")
        try:
            decode_calldata(self.calldata)
        except InvalidPayload as error:
            raise PydanticCustomError("calldata", "{message}", {"message": error.message}) from None
        return self

    def build(self, decode: Callable[[str], DecodedCall]) -> RequestFacts:
        selector, flags = self.method, frozenset(str(flag) for flag in self.flags)
        if self.calldata is not None:
            call = decode(self.calldata)
            selector, flags = call.selector, call.flags
        return RequestFacts(
            type=self.type.value,
            wallet=self.wallet,
            chain=self.chain,
            asset=self.asset,
            amount=self.amount,
            destination=_text(self.destination or (self.destinations or (None,))[0]),
            client=self.client,
            contract=_text(self.contract),
            method_selector=selector,
            call_flags=flags,
            venue=self.venue,
            primary_type=self.primary_type,
            wallet_address=_text(self.wallet_address),
            receiver=_text(self.receiver),
            receives_asset=self.receives_asset,
            receives_amount=self.receives_amount,
            fee=self.fee,
            fee_rate=self.fee_rate,
            destinations=tuple(str(d) for d in self.destinations),
        )


class PriceRow(_Strict):
    usd: UsdAmount
    decimals: Annotated[int, Field(ge=0, le=77, strict=True)]
    as_of: AwareDatetime
    chain: Name | None = None
    """The chain this price is for; by default the chain of the case's request."""


class PriceTable(_Strict):
    max_age: DurationSeconds
    assets: dict[Name, PriceRow]


class CaseContext(_Strict):
    now: AwareDatetime
    policy_applied_at: AwareDatetime | None = None
    prices: PriceTable | None = None

    def build(self, chain: str) -> EvaluationContext:
        """The context of a case whose request is on `chain`."""
        prices = None
        if self.prices is not None:
            prices = ReferencePrices(
                {
                    PriceKey(row.chain or chain, asset): UsdPrice(row.usd, row.decimals, row.as_of)
                    for asset, row in self.prices.assets.items()
                },
                max_age=timedelta(seconds=self.prices.max_age),
            )
        return EvaluationContext(
            now=self.now, prices=prices, policy_applied_at=self.policy_applied_at
        )


class Expect(_Strict):
    decision: Literal["allow", "deny", "require_approvals"]
    rule: str | None = None
    """Checked only when given; `rule: null` expects the default deny."""
    reason_contains: str | None = None
    limits: tuple[str, ...] | None = None

    def accepts(self, decision: Decision) -> bool:
        return (
            decision.decision == self.decision
            and ("rule" not in self.model_fields_set or decision.rule_id == self.rule)
            and (self.reason_contains is None or self.reason_contains in decision.reason)
            and (self.limits is None or tuple(decision.limits) == self.limits)
        )

    def to_dict(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude_unset=True)
