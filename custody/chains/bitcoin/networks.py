"""Bitcoin's networks by the names custody gives its chains, and each one's fee cap."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from embit.networks import NETWORKS

from custody.chains.errors import InvalidPayload

# Bitcoin Core's chain names -> embit's (address prefixes, bech32 human-readable part).
_EMBIT_NAMES = {"bitcoin": "main", "testnet": "test", "signet": "signet", "regtest": "regtest"}


@dataclass(frozen=True)
class FeeCap:
    """The most a PSBT may pay in fees: a fee-burning PSBT is refused before any policy runs."""

    max_fee_sats: int
    max_sats_per_vbyte: int


# 0.01 BTC and 1000 sat/vB: far above any fee market seen, far below a costly mistake.
FEE_CAPS = {
    "bitcoin": FeeCap(1_000_000, 1000),
    "testnet": FeeCap(1_000_000, 1000),
    "signet": FeeCap(1_000_000, 1000),
    "regtest": FeeCap(1_000_000, 1000),
}


def network_for(chain: str) -> dict[str, Any]:
    """embit's network parameters for one of custody's Bitcoin chains."""
    name = _EMBIT_NAMES.get(chain)
    if name is None:
        raise InvalidPayload(f"chain {chain!r} is not a Bitcoin network")
    network: dict[str, Any] = NETWORKS[name]
    return network


def fee_cap(chain: str) -> FeeCap:
    network_for(chain)
    return FEE_CAPS[chain]
