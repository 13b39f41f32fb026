"""Bitcoin segwit addresses (BIP-173/350) as policy files list them: bech32, one spelling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from embit import bech32
from pydantic import PlainSerializer, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from custody.chains.values import EvmAddress

# Human-readable parts of mainnet, testnet/signet and regtest segwit addresses.
HRPS = ("bcrt", "bc", "tb")


@dataclass(frozen=True, slots=True)
class SegwitAddress:
    text: str
    """Lower case: bech32 addresses have one canonical spelling."""

    @classmethod
    def parse(cls, text: str) -> SegwitAddress | None:
        lowered = text.lower()
        if text not in (lowered, text.upper()):
            return None  # mixed case is invalid bech32
        for hrp in HRPS:
            if lowered.startswith(hrp + "1"):
                version, program = bech32.decode(hrp, lowered)
                return None if version is None or program is None else cls(lowered)
        return None

    @property
    def lowercase(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text


def looks_bitcoin(text: object) -> bool:
    return isinstance(text, str) and text.lower().startswith(tuple(h + "1" for h in HRPS))


def _listed(text: object) -> EvmAddress | SegwitAddress:
    if isinstance(text, EvmAddress | SegwitAddress):
        return text
    if looks_bitcoin(text):
        assert isinstance(text, str)
        address = SegwitAddress.parse(text)
        if address is None:
            raise PydanticCustomError(
                "bad_bech32", "not a valid segwit address (bech32, BIP-173/350)"
            )
        return address
    return EvmAddress._from_file(text)


ListedAddress = Annotated[
    EvmAddress | SegwitAddress,
    PlainValidator(_listed),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string"}),
]
"""An allowlist entry's address: EVM (`0x`...) or a Bitcoin segwit address."""
