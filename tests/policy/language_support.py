"""Shared facts, contexts and policy builders for the language tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from custody.chains import Amount
from custody.policy import (
    EvaluationContext,
    LoadedPolicy,
    PriceKey,
    ReferencePrices,
    RequestFacts,
    UsdPrice,
    load_policy_text,
)

LISTED = "0x0DbBACFd06dbdB317eefEFAfb9fC5A06Ea04CD2A"
DELAYED = "0xB401148F5a99D0d2cE73768da4203485770d56EB"
UNLISTED = "0x539Ed2eC14EA976b7fC5dFccD3094479BF2B4C3a"
USDT = "0xdAC17F958D2ee523a2206206994597C13D831ec7"
COW = "0x9008D19f58AAbD9eD0D60971565AA8510560ab41"
HOT_ETH = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
SAFE = "0x5aFE3855358E112B5647B952709E6165e1c1eEEe"
ONE_ETH = 10**18
# Monday 2026-01-05 10:00 in Zurich (UTC+1 in winter).
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

BASE = RequestFacts(
    type="withdrawal",
    wallet="hot-eth",
    chain="ethereum",
    asset="ETH",
    amount=Amount(ONE_ETH),
    destination=LISTED,
    client="desk-1",
)

CALL = RequestFacts(
    type="contract_call",
    wallet="hot-eth",
    chain="ethereum",
    asset="USDT",
    amount=Amount(10**6),
    destination=LISTED,
    client="desk-1",
    contract=USDT,
    method_selector="0xa9059cbb",
)

# Sells 1 USDT for 1/3000 ETH on cowswap, paid to the wallet itself.
TRADE = RequestFacts(
    type="trade",
    wallet="hot-eth",
    chain="ethereum",
    asset="USDT",
    amount=Amount(10**6),
    destination=None,
    client="desk-1",
    contract=COW,
    venue="cowswap",
    primary_type="Order",
    wallet_address=HOT_ETH,
    receiver=HOT_ETH,
    receives_asset="ETH",
    receives_amount=Amount(ONE_ETH // 3000),
)


def prices(eth: str = "3000.00", age: timedelta = timedelta(minutes=1)) -> ReferencePrices:
    return ReferencePrices(
        {
            PriceKey("ethereum", "ETH"): UsdPrice.parse(eth, 18, NOW - age),
            PriceKey("ethereum", "USDT"): UsdPrice.parse("1.00", 6, NOW - age),
        },
        max_age=timedelta(minutes=15),
    )


CONTEXT = EvaluationContext(now=NOW, prices=prices(), policy_applied_at=NOW - timedelta(days=2))


def policy(rules: str, limits: str = "") -> LoadedPolicy:
    return load_policy_text(
        "version: 1\n"
        "allowlists:\n"
        "  treasury:\n"
        f"    - {{chain: ethereum, address: '{LISTED}', label: deposit}}\n"
        f"    - {{chain: ethereum, address: '{DELAYED}', label: new, activation_delay: 24h}}\n"
        + (f"limits:\n{limits}" if limits else "")
        + f"rules:\n{rules}",
        "test.yaml",
    )


def only(match: str) -> LoadedPolicy:
    """One rule that allows what `match` matches; everything else is denied by default."""
    return policy(f"  - {{id: r, match: {match}, action: allow}}\n")
