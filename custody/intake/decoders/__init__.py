"""One decoder per request type: strict body -> Draft. Unknown types are refused (fail closed).

Decoders read the database only through `Lookups` (custody.intake.lookups), which records what
they read so that intake can check it again in its write transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from custody.intake.decoders.bitcoin_psbt import decode_bitcoin_psbt
from custody.intake.decoders.contract_call import decode_contract_call
from custody.intake.decoders.sign_message import decode_sign_message
from custody.intake.decoders.trade import decode_trade
from custody.intake.decoders.withdrawal import decode_withdrawal
from custody.intake.draft import Draft
from custody.intake.errors import InvalidBody
from custody.intake.evmfill import EvmFill
from custody.intake.lookups import Lookups

KNOWN_TYPES = ("withdrawal", "contract_call", "trade", "sign_message", "bitcoin_psbt")

Decoder = Callable[[Lookups, dict[str, Any], EvmFill | None], Draft]


def _no_fill(decoder: Callable[[Lookups, dict[str, Any]], Draft]) -> Decoder:
    """Typed data and messages carry no transaction fields to fill."""
    return lambda lookups, data, fill: decoder(lookups, data)


DECODERS: dict[str, Decoder] = {
    "withdrawal": decode_withdrawal,
    "contract_call": decode_contract_call,
    "trade": _no_fill(decode_trade),
    "sign_message": _no_fill(decode_sign_message),
    "bitcoin_psbt": _no_fill(decode_bitcoin_psbt),
}


def decode(session: Session, data: dict[str, Any], fill: EvmFill | None = None) -> Draft:
    """Decode with the catalog as `session` sees it (the signer, the policy dry run); `fill`:
    what custody filled in on a connected chain when the request was stored."""
    return decode_with(Lookups(session), data, fill)


def decode_with(lookups: Lookups, data: dict[str, Any], fill: EvmFill | None = None) -> Draft:
    request_type = data.get("type")
    if request_type not in KNOWN_TYPES:
        raise InvalidBody(f"type must be one of {', '.join(KNOWN_TYPES)}, got {request_type!r}")
    decoder = DECODERS.get(str(request_type))
    if decoder is None:
        raise InvalidBody(f"request type {request_type!r} is not supported by this server yet")
    return decoder(lookups, data, fill)
