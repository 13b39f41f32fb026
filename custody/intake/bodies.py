"""Every request body `POST /v1/requests` accepts, as one union for the OpenAPI document.

Intake still reads the raw bytes (their SHA-256 is bound into the client's token, and strict JSON
refuses floats and duplicate keys before any model sees a value), then each decoder validates
its own model; this union only tells generated clients what those models are.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, TypeAdapter

from custody.intake.decoders.bitcoin_psbt import BitcoinPsbtBody
from custody.intake.decoders.contract_call import ContractCallBody
from custody.intake.decoders.sign_message import SignMessageBody
from custody.intake.decoders.trade import TradeBody
from custody.intake.schemas import WithdrawalBody

RequestBody = Annotated[
    WithdrawalBody | ContractCallBody | TradeBody | SignMessageBody | BitcoinPsbtBody,
    Field(discriminator="type"),
]
REQUEST_BODY: TypeAdapter[RequestBody] = TypeAdapter(RequestBody)
