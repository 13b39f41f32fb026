"""Chains custody knows by name: EVM chains (two built in, more added by operators with
`custody chains add`) and Bitcoin's four networks, built in."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from custody.chains.errors import InvalidPayload
from custody.chains.values import ChainId, describe

_CHAIN_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
# Symbols are shown to approvers next to amounts, so no spaces or control characters sneak in.
_ASSET_SYMBOL = re.compile(r"[A-Za-z0-9.]{1,16}")
# 10**77 < 2**256 < 10**78: more decimals than that could not describe one whole unit.
_MAX_DECIMALS = 77


def validate_chain_name(name: object) -> str:
    """Return ``name`` if it is a valid chain name: lowercase, starts with a letter, ≤ 32 chars."""
    if not isinstance(name, str) or not _CHAIN_NAME.fullmatch(name):
        raise InvalidPayload(
            "chain name must be 1-32 characters of a-z, 0-9 and '-', starting with a letter, "
            f"got {describe(name)}"
        )
    return name


@dataclass(frozen=True, slots=True)
class Chain:
    name: str
    kind: Literal["evm", "bitcoin"]
    evm_chain_id: int | None
    native_asset: str
    native_decimals: int

    def __post_init__(self) -> None:
        validate_chain_name(self.name)
        if self.kind == "evm" and self.evm_chain_id is not None:
            ChainId(self.evm_chain_id)
        elif not (self.kind == "bitcoin" and self.evm_chain_id is None):
            raise InvalidPayload(
                f"chain kind must be 'evm' with a chain id or 'bitcoin' without, got "
                f"{describe(self.kind)}"
            )
        if not isinstance(self.native_asset, str) or not _ASSET_SYMBOL.fullmatch(self.native_asset):
            raise InvalidPayload(
                "native asset must be 1-16 letters, digits or dots, "
                f"got {describe(self.native_asset)}"
            )
        decimals = self.native_decimals
        if isinstance(decimals, bool) or not isinstance(decimals, int):
            raise InvalidPayload(f"native decimals must be an integer, got {describe(decimals)}")
        if not 0 <= decimals <= _MAX_DECIMALS:
            raise InvalidPayload(f"native decimals must be between 0 and {_MAX_DECIMALS}")


# Read-only so that no caller can add or replace a built-in chain for everyone else in the process.
BUILTIN_CHAINS: Mapping[str, Chain] = MappingProxyType(
    {
        "ethereum": Chain("ethereum", "evm", 1, "ETH", 18),
        "sepolia": Chain("sepolia", "evm", 11155111, "ETH", 18),
        # Bitcoin networks by their Bitcoin Core names (custody.chains.bitcoin.networks).
        "bitcoin": Chain("bitcoin", "bitcoin", None, "BTC", 8),
        "testnet": Chain("testnet", "bitcoin", None, "BTC", 8),
        "signet": Chain("signet", "bitcoin", None, "BTC", 8),
        "regtest": Chain("regtest", "bitcoin", None, "BTC", 8),
    }
)


def builtin_chain_for(evm_chain_id: int) -> Chain | None:
    """The built-in chain with this EVM chain id, if there is one."""
    for chain in BUILTIN_CHAINS.values():
        if chain.evm_chain_id == evm_chain_id:
            return chain
    return None
