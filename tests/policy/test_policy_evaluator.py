"""Evaluation: every match key and action, first match wins, default deny, fail closed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import pytest

from custody.chains import Amount
from custody.policy import (
    Allow,
    Deny,
    LoadedPolicy,
    RequestFacts,
    RequireApprovals,
    evaluate,
    load_policy_text,
)
from custody.policy.compiled import compile_match
from custody.policy.match_keys import MATCH_KEYS, CompileContext
from custody.policy.schema import Match

LISTED = "0x0DbBACFd06dbdB317eefEFAfb9fC5A06Ea04CD2A"
UNLISTED = "0x539Ed2eC14EA976b7fC5dFccD3094479BF2B4C3a"
ONE_ETH = 10**18

BASE = RequestFacts(
    type="withdrawal",
    wallet="hot-eth",
    chain="ethereum",
    asset="ETH",
    amount=Amount(ONE_ETH),
    destination=LISTED,
    client="desk-1",
)


def policy(rules: str, allowlists: str = "") -> LoadedPolicy:
    lists = (
        allowlists
        or f"""
  treasury:
    - {{chain: ethereum, address: "{LISTED}", label: deposit}}
  other:
    - {{chain: sepolia, address: "{UNLISTED}", label: test}}
"""
    )
    return load_policy_text(f"version: 1\nallowlists:{lists}\nrules:\n{rules}", "test.yaml")


def only(match: str) -> LoadedPolicy:
    """A policy whose one rule allows what `match` matches; everything else is denied by default."""
    return policy(f"  - {{id: r, match: {match}, action: allow}}\n")


MATCH_TABLE: list[tuple[str, dict[str, Any], bool]] = [
    ("{}", {}, True),
    ("{type: withdrawal}", {}, True),
    ("{type: trade}", {}, False),
    ("{type: contract_call}", {"type": "contract_call"}, True),
    ("{type: sign_message}", {"type": "sign_message", "amount": Amount(0)}, True),
    ("{wallets: [hot-eth]}", {}, True),
    ("{wallets: [cold-eth, hot-eth]}", {}, True),
    ("{wallets: [cold-eth]}", {}, False),
    ("{wallets: [Hot-Eth]}", {}, False),
    ("{wallets: ['hot-*']}", {}, True),
    ("{wallets: ['hot-*']}", {"wallet": "hot-btc"}, True),
    ("{wallets: ['hot-*']}", {"wallet": "cold-eth"}, False),
    ("{wallets: ['hot-?th']}", {}, True),
    ("{wallets: ['hot-[a-d]th']}", {}, False),
    ("{wallets: ['*-eth', cold]}", {"wallet": "cold"}, True),
    ("{wallets: ['hot-*']}", {"wallet": "xhot-eth"}, False),
    ("{chains: [ethereum]}", {}, True),
    ("{chains: [sepolia]}", {}, False),
    ("{assets: [ETH, USDC]}", {"asset": "USDC"}, True),
    ("{assets: [USDC]}", {}, False),
    ("{assets: [ETH], amount_lte: '1000000000000000000'}", {}, True),
    ("{assets: [ETH], amount_lte: '999999999999999999'}", {}, False),
    ("{assets: [ETH], amount_lt: '1000000000000000000'}", {}, False),
    ("{assets: [ETH], amount_lt: '1000000000000000001'}", {}, True),
    ("{assets: [ETH], amount_gte: '1000000000000000000'}", {}, True),
    ("{assets: [ETH], amount_gte: '1000000000000000001'}", {}, False),
    ("{assets: [ETH], amount_gt: '1000000000000000000'}", {}, False),
    ("{assets: [ETH], amount_gt: '999999999999999999'}", {}, True),
    ("{assets: [ETH], amount_gte: '0'}", {"amount": Amount(0)}, True),
    ("{destination_in: treasury}", {}, True),
    ("{destination_in: treasury}", {"destination": LISTED.lower()}, True),
    ("{destination_in: treasury}", {"destination": "0x" + LISTED[2:].upper()}, True),
    ("{destination_in: treasury}", {"destination": UNLISTED}, False),
    ("{destination_in: treasury}", {"destination": None}, False),
    ("{destination_in: treasury}", {"chain": "sepolia"}, False),
    ("{destination_in: [other, treasury]}", {}, True),
    ("{destination_in: other}", {"chain": "sepolia", "destination": UNLISTED}, True),
    ("{destination_not_in: treasury}", {}, False),
    ("{destination_not_in: treasury}", {"destination": UNLISTED}, True),
    ("{destination_not_in: treasury}", {"destination": None}, True),
    ("{destination_not_in: [other, treasury]}", {"destination": LISTED.lower()}, False),
    ("{type: withdrawal, wallets: [hot-eth], assets: [ETH], amount_lte: '1'}", {}, False),
    (
        "{type: withdrawal, wallets: [hot-eth], assets: [ETH], amount_lte: '1'}",
        {"amount": Amount(1)},
        True,
    ),
]


@pytest.mark.parametrize(("match", "changes", "allowed"), MATCH_TABLE)
def test_match_keys(match: str, changes: dict[str, Any], allowed: bool) -> None:
    decision = evaluate(only(match), replace(BASE, **changes))
    assert isinstance(decision, Allow if allowed else Deny)


def test_every_match_key_has_a_compiler() -> None:
    assert set(Match.model_fields) == set(MATCH_KEYS)


def test_a_match_key_without_compiler_is_refused_not_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("custody.policy.compiled.MATCH_KEYS", {})
    with pytest.raises(LookupError, match="amount_lte"):
        compile_match(Match.model_validate({"amount_lte": "1"}), CompileContext(allowlists={}))


def test_actions() -> None:
    loaded = policy(
        "  - {id: a, match: {wallets: [a]}, action: allow}\n"
        "  - {id: d, match: {wallets: [d]}, action: deny}\n"
        "  - {id: q, match: {wallets: [q]}, action: {require_approvals: {count: 2, group: ops}}}\n"
        "  - id: x\n"
        "    match: {wallets: [x]}\n"
        "    action: {require_approvals: {count: 3, group: treasury, expires_after: 2h}}\n"
    )
    assert evaluate(loaded, replace(BASE, wallet="a")).to_dict()["decision"] == "allow"
    assert evaluate(loaded, replace(BASE, wallet="d")) == Deny(
        "d", f"rule d: withdrawal of {ONE_ETH} ETH from d matched"
    )
    assert evaluate(loaded, replace(BASE, wallet="q")) == RequireApprovals(
        "q", f"rule q: withdrawal of {ONE_ETH} ETH from q matched", 2, "ops", None
    )
    assert evaluate(loaded, replace(BASE, wallet="x")).to_dict() == {
        "decision": "require_approvals",
        "rule": "x",
        "reason": f"rule x: withdrawal of {ONE_ETH} ETH from x matched",
        "count": 3,
        "group": "treasury",
        "expires_after_seconds": 7200,
    }


def test_first_match_decides() -> None:
    rules = (
        "  - {id: deny-big, match: {assets: [ETH], amount_gt: '5'}, action: deny}\n"
        "  - {id: allow-all, match: {}, action: allow}\n"
    )
    loaded = policy(rules)
    assert evaluate(loaded, replace(BASE, amount=Amount(6))).to_dict()["rule"] == "deny-big"
    assert evaluate(loaded, replace(BASE, amount=Amount(5))).to_dict()["rule"] == "allow-all"
    swapped = policy("\n".join(reversed(rules.splitlines())) + "\n")
    assert evaluate(swapped, replace(BASE, amount=Amount(6))).to_dict()["rule"] == "allow-all"


def test_default_deny() -> None:
    decision = evaluate(only("{type: trade}"), BASE)
    assert decision == Deny(None, "no rule matched: denied by default")
    assert decision.to_dict() == {
        "decision": "deny",
        "rule": None,
        "reason": "no rule matched: denied by default",
    }


def test_reason_names_rule_and_why() -> None:
    loaded = only(
        "{type: withdrawal, wallets: [hot-eth], assets: [ETH], amount_lte: '1000000000000000000'}"
    )
    decision = evaluate(loaded, replace(BASE, amount=Amount(500000000000000000)))
    assert decision.to_dict() == {
        "decision": "allow",
        "rule": "r",
        "reason": "rule r: withdrawal of 500000000000000000 ETH from hot-eth"
        " is at most 1000000000000000000",
    }
    unlisted = evaluate(only("{destination_not_in: treasury}"), replace(BASE, destination=UNLISTED))
    assert unlisted.reason.endswith(f"goes to {UNLISTED}, which is not on allowlist treasury")


class _BrokenFacts:
    """Stands in for facts from a buggy decoder: reading the amount blows up."""

    type = "withdrawal"
    wallet = "hot-eth"
    chain = "ethereum"
    asset = "ETH"
    destination = LISTED
    client = None

    @property
    def amount(self) -> int:
        raise RuntimeError("decoder bug")


@pytest.mark.parametrize(
    "rules",
    [
        "  - {id: allow-small, match: {assets: [ETH], amount_lte: '5'}, action: allow}\n",
        "  - {id: deny-big, match: {assets: [ETH], amount_gt: '5'}, action: deny}\n"
        "  - {id: allow-rest, match: {}, action: allow}\n",
    ],
)
def test_fails_closed_on_unexpected_exception(rules: str) -> None:
    decision = evaluate(policy(rules), cast(RequestFacts, _BrokenFacts()))
    assert decision == Deny(None, "policy evaluation failed (RuntimeError): denied")


def test_fails_closed_on_a_broken_policy_object() -> None:
    decision = evaluate(cast(LoadedPolicy, object()), BASE)
    assert decision == Deny(None, "policy evaluation failed (AttributeError): denied")


def test_fails_closed_on_wrong_fact_types() -> None:
    facts = cast(RequestFacts, type("Facts", (), {**vars(_BrokenFacts), "amount": "5"})())
    decision = evaluate(only("{assets: [ETH], amount_lte: '5'}"), facts)
    assert isinstance(decision, Deny)
    assert decision.rule_id is None


@pytest.mark.parametrize("amount", [5, -1, True, 1.0, "1"])
def test_facts_refuse_bad_amounts(amount: object) -> None:
    with pytest.raises(ValueError, match="must be an Amount"):
        replace(BASE, amount=cast(Amount, amount))


def test_decisions_are_json_ready_without_floats() -> None:
    loaded = only("{}")
    for decision in (
        evaluate(loaded, BASE),
        Deny(None, "x"),
        RequireApprovals("r", "y", 2, "g", 60),
    ):
        assert all(not isinstance(value, float) for value in decision.to_dict().values())
        assert {"decision", "rule", "reason"} <= decision.to_dict().keys()
