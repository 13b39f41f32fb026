"""Gas and fee choices from a node's answers (custody.chains.evm.fees), known answers."""

from __future__ import annotations

from custody.chains.evm.eip1559 import MAX_GAS
from custody.chains.evm.fees import DEFAULT_TIP_WEI, Fees, fees, gas_limit


def test_a_plain_transfer_gets_exactly_21000_and_a_call_a_fifth_more() -> None:
    assert gas_limit(21_000) == 21_000
    assert gas_limit(50_000) == 60_000
    assert gas_limit(MAX_GAS) == MAX_GAS  # never above what a transaction may ask


def test_fees_follow_the_median_tip_and_double_the_base_fee() -> None:
    assert fees(10, [3, 1, 2], given_max_fee=None) == Fees(22, 2)
    # Blocks that paid no tip say nothing about what gets included: the default tip.
    assert fees(10, [0, 0], given_max_fee=None) == Fees(20 + DEFAULT_TIP_WEI, DEFAULT_TIP_WEI)
    # A max fee the body gave stays, and the tip never exceeds it.
    assert fees(10, [5], given_max_fee=3) == Fees(3, 3)
    assert fees(10, [5], given_max_fee=100) == Fees(100, 5)
