"""Trades in the policy language: what leaves the wallet, what comes back, and who is paid."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from custody.chains import Amount
from custody.policy import Allow, Deny, PolicyInvalid, RequestFacts, evaluate
from custody.policy.evaluator import limits_for
from tests.policy.language_support import CONTEXT, LISTED, TRADE, UNLISTED, only, policy


def test_a_trade_paying_the_wallet_says_so_in_its_reason() -> None:
    decision = evaluate(only("{type: trade, venues: [cowswap]}"), TRADE)
    assert decision == Allow(
        "r",
        "rule r: trade of 1000000 USDT from hot-eth for 333333333333333 ETH trades on venue"
        " cowswap and pays the wallet itself",
    )


def test_a_trade_paying_someone_else_is_denied_by_default_with_what_would_permit_it() -> None:
    decision = evaluate(only("{type: trade}"), replace(TRADE, receiver=UNLISTED))
    assert decision == Deny(
        None,
        f"no rule matched: denied by default (the trade pays {UNLISTED}, not the wallet;"
        " a permitting rule must say receiver_in: <an allowlist listing it>)",
    )


def test_a_trade_whose_receiver_is_unknown_is_permitted_by_no_rule() -> None:
    """Facts stored before receivers were read: the signer's re-check stops such a trade."""
    stored = json.dumps({k: v for k, v in TRADE.to_dict().items() if k != "receiver"})
    old = RequestFacts.from_json(stored)
    assert old.receiver is None
    decision = evaluate(only("{type: trade}"), old)
    assert decision.reason.endswith("(the trade's receiver is not known)")
    assert evaluate(only("{receiver_in: treasury}"), old).rule_id is None


def test_receiver_in_names_the_allowlist_in_its_reason() -> None:
    decision = evaluate(only("{receiver_in: treasury}"), replace(TRADE, receiver=LISTED), CONTEXT)
    assert isinstance(decision, Allow)
    assert decision.reason.endswith(f"pays {LISTED}, which is on allowlist treasury")


def test_deny_rules_catch_trades_paying_anyone() -> None:
    rules = "  - {id: no-trades, match: {type: trade}, action: deny}\n"
    decision = evaluate(policy(rules), replace(TRADE, receiver=UNLISTED))
    assert decision.rule_id == "no-trades"


@pytest.mark.parametrize("action", ["allow", "deny"])
def test_an_amount_bound_without_assets_is_refused(action: str) -> None:
    """A trade's amount is in whichever asset it sells: a bare bound would compare base units of
    different tokens, so the file is refused (stored versions deny: custody.policy.units)."""
    rules = (
        f"  - {{id: capped, match: {{type: trade, amount_lte: '5000000'}}, action: {action}}}\n"
        "  - {id: all, match: {}, action: allow}\n"
    )
    with pytest.raises(PolicyInvalid, match="amount_lte"):
        policy(rules)


def test_usd_rules_value_what_leaves_the_wallet() -> None:
    decision = evaluate(only("{type: trade, amount_usd_lte: '1.00'}"), TRADE, CONTEXT)
    assert isinstance(decision, Allow)
    assert "is worth 1.00 USD, at most 1.00 USD" in decision.reason
    dearer = replace(TRADE, amount=Amount(10**6 + 1))
    assert isinstance(
        evaluate(only("{type: trade, amount_usd_lte: '1.00'}"), dearer, CONTEXT), Deny
    )


def test_limits_count_the_asset_a_trade_sells() -> None:
    limits = (
        "  - {id: usdt-daily, wallets: [hot-eth], asset: USDT, window: 24h, max_amount: '5'}\n"
        "  - {id: eth-daily, wallets: [hot-eth], asset: ETH, window: 24h, max_amount: '5'}\n"
    )
    loaded = policy("  - {id: r, match: {}, action: allow}\n", limits)
    assert limits_for(loaded, TRADE) == ("usdt-daily",)


def test_trade_facts_round_trip_through_the_stored_column() -> None:
    assert RequestFacts.from_json(json.dumps(TRADE.to_dict())) == TRADE
    assert TRADE.to_dict()["receives_amount"] == "333333333333333"


def test_receiver_in_must_name_a_known_allowlist() -> None:
    with pytest.raises(
        PolicyInvalid, match=r"rules\[0\]\.match\.receiver_in\[0\]: unknown allowlist"
    ):
        policy("  - {id: r, match: {receiver_in: desks}, action: allow}\n")
