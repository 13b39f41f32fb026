"""Gas and fee choices from what a node reports: pure arithmetic, tested on its own."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from custody.chains.evm.eip1559 import MAX_GAS, MIN_GAS
from custody.chains.evm.eip1559 import PAYLOAD_TYPE as EIP1559
from custody.chains.evm.safe_payload import PAYLOAD_TYPE as SAFE_TX

# A tip when recent blocks paid none (a quiet chain, a development node): 1 gwei.
DEFAULT_TIP_WEI = 1_000_000_000
# Blocks of history and the percentile of tips custody follows.
HISTORY_BLOCKS = 10
TIP_PERCENTILE = 50


@dataclass(frozen=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


def gas_limit(estimate: int) -> int:
    """The node's estimate with a fifth more for a contract call (state may move between the
    estimate and inclusion); a plain transfer costs exactly 21000."""
    if estimate <= MIN_GAS:
        return MIN_GAS
    return min(estimate + estimate // 5, MAX_GAS)


def fees(base_fee: int, tips: list[int], *, given_max_fee: int | None) -> Fees:
    """A tip at the median of recent ones, and a max fee that survives the base fee doubling
    (six full blocks in a row raise it by at most 12.5% each, about 2x)."""
    paid = sorted(t for t in tips if t > 0)
    tip = paid[len(paid) // 2] if paid else DEFAULT_TIP_WEI
    if given_max_fee is not None:
        return Fees(given_max_fee, min(tip, given_max_fee))
    return Fees(2 * base_fee + tip, tip)


def payload_fees(payload: Mapping[str, Any]) -> tuple[int, int] | None:
    """(gas, max_fee_per_gas) of the transaction a stored payload sends: an EIP-1559 payload's
    own, a Safe payload's executor's (`execTransaction`); None for payloads that pay no gas."""
    if payload.get("type") == SAFE_TX:
        payload = payload["executor"]
    elif payload.get("type") != EIP1559:
        return None
    return int(payload["gas"]), int(payload["max_fee_per_gas"])
