"""EIP-191 personal messages (`personal_sign`): denied unless a rule allows `sign_message`.

A message signature can authorise things off-chain (exchange logins, permit-style approvals), so
the policy sees it as its own type, moving nothing (amount 0), and the approver sees the text.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError

from custody.chains import Amount
from custody.chains.evm.eip191 import PAYLOAD_TYPE, eip191_digest
from custody.intake.decoders.withdrawal import evm_chain_id
from custody.intake.draft import Draft
from custody.intake.errors import InvalidBody
from custody.intake.lookups import Lookups
from custody.intake.schemas import describe_validation_error

MAX_MESSAGE = 4096


class SignMessageBody(BaseModel):
    """An EIP-191 `personal_sign` message: printable text, denied unless a rule allows it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    type: Literal["sign_message"]
    wallet: StrictStr
    message: StrictStr = Field(min_length=1, max_length=MAX_MESSAGE)


def decode_sign_message(lookups: Lookups, data: dict[str, Any]) -> Draft:
    try:
        body = SignMessageBody.model_validate(data)
    except ValidationError as exc:
        raise InvalidBody(f"sign_message request: {describe_validation_error(exc)}") from None
    if not all(c.isprintable() or c in "\n\t" for c in body.message):
        # Control characters can hide what a person is asked to approve.
        raise InvalidBody("sign_message request: message may contain only printable text")
    wallet = lookups.wallet(body.wallet)
    chain = lookups.chain(wallet.chain_id)
    evm_chain_id(chain)  # an EIP-191 signature by a Bitcoin wallet's key would mean nothing
    payload = {"type": PAYLOAD_TYPE, "message": body.message}
    shown = body.message if len(body.message) <= 80 else body.message[:77] + "..."
    return Draft(
        type="sign_message",
        wallet=wallet,
        chain=chain,
        asset=chain.native_asset,
        amount=Amount(0),
        destination=None,
        payload=payload,
        digest=eip191_digest(body.message).prefixed(),
        summary=f"sign the message {shown!r} with {wallet.name} ({wallet.address})",
        details={"message": body.message},
    )
