"""The match keys added for issue 3, as a table: match, facts changes, context, expected."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from custody.chains import Amount
from custody.policy import Allow, Deny, EvaluationContext, ReferencePrices, UsdPrice, evaluate
from tests.policy.language_support import (
    BASE,
    CALL,
    CONTEXT,
    DELAYED,
    HOT_ETH,
    LISTED,
    NOW,
    SAFE,
    TRADE,
    UNLISTED,
    USDT,
    only,
    policy,
    prices,
)

TRANSFER = "transfer(address,uint256)"
STALE = replace(CONTEXT, prices=prices(age=timedelta(hours=1)))
LATER = replace(CONTEXT, policy_applied_at=NOW - timedelta(hours=1))

# (match, base facts, changes, context, expected decision type)
TABLE: list[tuple[str, Any, dict[str, Any], EvaluationContext | None, type]] = [
    ("{clients: [desk-1]}", BASE, {}, None, Allow),
    ("{clients: [desk-2]}", BASE, {}, None, Deny),
    ("{clients: [desk-1]}", BASE, {"client": None}, None, Deny),
    ("{venues: [cowswap]}", TRADE, {}, None, Allow),
    ("{venues: [cowswap]}", TRADE, {"venue": "uniswapx"}, None, Deny),
    ("{venues: [cowswap]}", TRADE, {"venue": None}, None, Deny),
    ("{primary_types: [Order]}", TRADE, {}, None, Allow),
    ("{primary_types: [Order]}", TRADE, {"primary_type": "Permit"}, None, Deny),
    # a trade must pay its own wallet, or an address on a list the rule names (receiver_in)
    ("{venues: [cowswap]}", TRADE, {"receiver": HOT_ETH.lower()}, None, Allow),
    ("{venues: [cowswap]}", TRADE, {"receiver": UNLISTED}, None, Deny),
    ("{venues: [cowswap]}", TRADE, {"receiver": LISTED}, None, Deny),
    ("{venues: [cowswap]}", TRADE, {"receiver": None}, None, Deny),
    ("{venues: [cowswap]}", TRADE, {"wallet_address": None}, None, Deny),
    ("{receiver_in: treasury}", TRADE, {}, None, Allow),
    ("{receiver_in: treasury}", TRADE, {"receiver": LISTED}, None, Allow),
    ("{receiver_in: treasury}", TRADE, {"receiver": LISTED.lower()}, None, Allow),
    ("{receiver_in: treasury}", TRADE, {"receiver": UNLISTED}, None, Deny),
    ("{receiver_in: treasury}", TRADE, {"receiver": None}, None, Deny),
    ("{receiver_in: treasury}", TRADE, {"receiver": DELAYED}, CONTEXT, Allow),
    ("{receiver_in: treasury}", TRADE, {"receiver": DELAYED}, LATER, Deny),
    ("{receiver_in: treasury}", TRADE, {"chain": "sepolia", "receiver": LISTED}, None, Deny),
    ("{receiver_in: treasury}", BASE, {}, None, Deny),  # only trades have receivers
    ("{type: withdrawal}", BASE, {"receiver": UNLISTED}, None, Allow),  # the gate is for trades
    ("{receives_assets: [ETH]}", TRADE, {}, None, Allow),
    ("{receives_assets: [USDC, WBTC]}", TRADE, {}, None, Deny),
    ("{receives_assets: [ETH]}", BASE, {}, None, Deny),
    # a trade's amount is in the asset it sells: a bound needs assets, USD needs no asset
    ("{assets: [USDT], amount_lte: '1000000'}", TRADE, {}, None, Allow),
    ("{assets: [USDT], amount_lt: '1000000'}", TRADE, {}, None, Deny),
    ("{assets: [ETH], amount_lte: '1000000000000000000'}", BASE, {}, None, Allow),
    ("{amount_usd_lte: '1.00'}", TRADE, {}, CONTEXT, Allow),
    ("{amount_usd_lt: '1.00'}", TRADE, {}, CONTEXT, Deny),
    (f"{{contracts: ['{USDT}']}}", CALL, {}, None, Allow),
    (f"{{contracts: ['{USDT.lower()}']}}", CALL, {}, None, Allow),
    (f"{{contracts: ['{USDT}']}}", CALL, {"contract": USDT.lower()}, None, Allow),
    (f"{{contracts: ['{SAFE}']}}", CALL, {}, None, Deny),
    (f"{{contracts: ['{SAFE}']}}", BASE, {}, None, Deny),
    ("{methods: ['0xa9059cbb']}", CALL, {}, None, Allow),
    ("{methods: ['0xA9059CBB']}", CALL, {}, None, Allow),
    (f"{{methods: ['{TRANSFER}']}}", CALL, {}, None, Allow),
    ("{methods: ['approve(address,uint256)']}", CALL, {}, None, Deny),
    ("{methods: ['0x095ea7b3']}", CALL, {"method_selector": "0x095ea7b3"}, None, Allow),
    # dangerous calls: denied unless the permitting rule names the flag
    ("{type: contract_call}", CALL, {"call_flags": frozenset({"delegatecall"})}, None, Deny),
    (
        "{type: contract_call, allow_delegatecall: true}",
        CALL,
        {"call_flags": frozenset({"delegatecall"})},
        None,
        Allow,
    ),
    (
        "{allow_delegatecall: true}",
        CALL,
        {"call_flags": frozenset({"delegatecall", "unknown_method"})},
        None,
        Deny,
    ),
    (
        "{allow_delegatecall: true, allow_unknown_method: true}",
        CALL,
        {"call_flags": frozenset({"delegatecall", "unknown_method"})},
        None,
        Allow,
    ),
    ("{}", CALL, {"call_flags": frozenset({"unknown_method"})}, None, Deny),
    (
        "{allow_unknown_method: true}",
        CALL,
        {"call_flags": frozenset({"unknown_method"})},
        None,
        Allow,
    ),
    ("{}", CALL, {"call_flags": frozenset({"unlimited_approval"})}, None, Deny),
    (
        "{allow_unlimited_approval: true}",
        CALL,
        {"call_flags": frozenset({"unlimited_approval"})},
        None,
        Allow,
    ),
    ("{allow_delegatecall: true}", CALL, {}, None, Allow),
    # USD amounts: 1 ETH at 3000.00
    ("{amount_usd_lte: '3000.00'}", BASE, {}, CONTEXT, Allow),
    ("{amount_usd_lte: '2999.99'}", BASE, {}, CONTEXT, Deny),
    ("{amount_usd_lt: '3000'}", BASE, {}, CONTEXT, Deny),
    ("{amount_usd_lt: '3000.000000000000000001'}", BASE, {}, CONTEXT, Allow),
    ("{amount_usd_gte: '3000.00'}", BASE, {}, CONTEXT, Allow),
    ("{amount_usd_gt: '3000.00'}", BASE, {}, CONTEXT, Deny),
    ("{amount_usd_gt: '2999.99'}", BASE, {"amount": Amount(10**18 - 1)}, CONTEXT, Allow),
    ("{amount_usd_lte: '1.00'}", CALL, {}, CONTEXT, Allow),
    ("{amount_usd_lte: '0.99'}", CALL, {}, CONTEXT, Deny),
    # destination_in with an activation delay of 24h (policy applied 2 days before NOW)
    ("{destination_in: treasury}", BASE, {"destination": DELAYED}, CONTEXT, Allow),
    ("{destination_in: treasury}", BASE, {"destination": DELAYED}, LATER, Deny),
    ("{destination_in: treasury}", BASE, {"destination": DELAYED}, None, Deny),
    ("{destination_in: treasury}", BASE, {"destination": LISTED}, None, Allow),
    ("{destination_not_in: treasury}", BASE, {"destination": DELAYED}, LATER, Allow),
    ("{destination_not_in: treasury}", BASE, {"destination": DELAYED}, CONTEXT, Deny),
    # time windows: NOW is Monday 10:00 in Zurich, 09:00 UTC
    ("{time_window: {days: [mon], tz: Europe/Zurich}}", BASE, {}, CONTEXT, Allow),
    ("{time_window: {days: [tue, sun], tz: Europe/Zurich}}", BASE, {}, CONTEXT, Deny),
    ("{time_window: {hours: '10:00-18:00', tz: Europe/Zurich}}", BASE, {}, CONTEXT, Allow),
    ("{time_window: {hours: '08:00-10:00', tz: Europe/Zurich}}", BASE, {}, CONTEXT, Deny),
    ("{time_window: {hours: '08:00-10:00', tz: UTC}}", BASE, {}, CONTEXT, Allow),
    ("{time_window: {hours: '22:00-10:01', tz: Europe/Zurich}}", BASE, {}, CONTEXT, Allow),
    (
        "{time_window: {days: [mon], hours: '22:00-10:01', tz: Europe/Zurich}}",
        BASE,
        {},
        CONTEXT,
        Deny,  # the overnight window that covers Monday 10:00 opened on Sunday
    ),
    (
        "{time_window: {days: [sun], hours: '22:00-10:01', tz: Europe/Zurich}}",
        BASE,
        {},
        CONTEXT,
        Allow,
    ),
]


@pytest.mark.parametrize(("match", "base", "changes", "context", "expected"), TABLE)
def test_match_keys(
    match: str,
    base: Any,
    changes: dict[str, Any],
    context: EvaluationContext | None,
    expected: type,
) -> None:
    decision = evaluate(only(match), replace(base, **changes), context)
    assert type(decision) is expected, decision.reason


FAIL_CLOSED: list[tuple[str, EvaluationContext | None, str]] = [
    ("{amount_usd_lte: '1.00'}", None, "no USD reference prices to value ETH"),
    ("{amount_usd_gt: '1.00'}", STALE, "USD price of ETH on ethereum is stale"),
    (
        "{amount_usd_gt: '1.00'}",
        replace(CONTEXT, prices=prices(age=-timedelta(minutes=1))),
        "USD price of ETH on ethereum is dated in the future",
    ),
    ("{time_window: {days: [mon], tz: UTC}}", None, "no evaluation time to judge the time window"),
]


@pytest.mark.parametrize(("match", "context", "reason"), FAIL_CLOSED)
@pytest.mark.parametrize("action", ["allow", "deny"])
def test_undecidable_keys_deny_in_the_rules_name(
    match: str, context: EvaluationContext | None, reason: str, action: str
) -> None:
    # The rule's own action does not matter, and no later rule gets to decide instead.
    rules = (
        f"  - {{id: r, match: {match}, action: {action}}}\n"
        "  - {id: all, match: {}, action: allow}\n"
    )
    decision = evaluate(policy(rules), BASE, context)
    assert isinstance(decision, Deny)
    assert decision.rule_id == "r"
    assert reason in decision.reason
    assert decision.reason.endswith("denied (fail closed)")


def test_missing_price_names_the_asset() -> None:
    decision = evaluate(only("{amount_usd_lte: '1.00'}"), replace(BASE, asset="WBTC"), CONTEXT)
    assert decision == Deny(
        "r", "rule r: no USD reference price for WBTC on ethereum: denied (fail closed)"
    )


def test_a_price_values_its_asset_on_its_chain_only() -> None:
    # The same symbol on another chain is another contract (perhaps other decimals, or no peg):
    # ETH priced on ethereum says nothing about ETH on sepolia.
    decision = evaluate(only("{amount_usd_lte: '1.00'}"), replace(BASE, chain="sepolia"), CONTEXT)
    assert decision == Deny(
        "r", "rule r: no USD reference price for ETH on sepolia: denied (fail closed)"
    )


def test_a_price_table_keyed_by_symbol_alone_is_refused() -> None:
    by_symbol: Any = {"ETH": UsdPrice.parse("1.00", 18, NOW)}
    with pytest.raises(ValueError, match="PriceKey"):
        ReferencePrices(by_symbol, max_age=timedelta(minutes=1))


def test_a_rule_that_cannot_apply_never_consults_prices() -> None:
    # Cheap keys decide first: a trade-only rule does not need a price to skip a withdrawal.
    loaded = only("{type: trade, amount_usd_lte: '1.00'}")
    assert evaluate(loaded, BASE, None).rule_id is None


def test_reasons_explain_new_keys() -> None:
    loaded = only(
        f"{{type: contract_call, contracts: ['{USDT}'], methods: ['{TRANSFER}'],"
        " allow_unknown_method: true, amount_usd_lte: '5.00',"
        " time_window: {days: [mon], hours: '08:00-18:00', tz: Europe/Zurich}}"
    )
    flagged = replace(CALL, call_flags=frozenset({"unknown_method"}))
    decision = evaluate(loaded, flagged, CONTEXT)
    assert decision.reason == (
        "rule r: contract_call of 1000000 USDT from hot-eth"
        f" calls contract {USDT.lower()} and calls method 0xa9059cbb"
        " and is allowed despite unknown_method and is worth 1.00 USD, at most 5.00 USD"
        " and at Mon 10:00 Europe/Zurich, within mon 08:00-18:00 Europe/Zurich"
    )


def test_listed_since_keeps_an_entry_active_across_versions() -> None:
    loaded = only("{destination_in: treasury}")
    facts = replace(BASE, destination=DELAYED)
    since = {("treasury", "ethereum", DELAYED.lower()): NOW - timedelta(days=3)}
    assert isinstance(evaluate(loaded, facts, replace(LATER, listed_since=since)), Allow)


def test_evaluate_never_reads_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> Frozen:
            raise AssertionError("evaluate read the clock")

    monkeypatch.setattr(dt, "datetime", Frozen)
    loaded = only("{time_window: {days: [mon], tz: UTC}}")
    assert isinstance(evaluate(loaded, BASE, CONTEXT), Allow)
