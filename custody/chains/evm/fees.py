"""Gas and fee choices from what a node reports: pure arithmetic, tested on its own."""

from __future__ import annotations

from dataclasses import dataclass

from custody.chains.evm.eip1559 import MAX_GAS, MIN_GAS

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
