"""Actions: all_of quorums, expiry, limits on decisions, and their JSON form."""

from __future__ import annotations

from dataclasses import replace

import pytest

from custody.chains import Amount
from custody.policy import Allow, Deny, GroupQuorum, RequireApprovals, evaluate
from tests.policy.language_support import BASE, ONE_ETH, policy

ALL_OF = (
    "  - id: big\n"
    "    match: {}\n"
    "    action:\n"
    "      require_approvals:\n"
    "        all_of: [{count: 2, group: treasury}, {count: 1, group: risk}]\n"
    "        expires_after: 4h\n"
)


def test_all_of_requires_every_quorum() -> None:
    decision = evaluate(policy(ALL_OF), BASE)
    assert isinstance(decision, RequireApprovals)
    assert decision.quorums == (GroupQuorum(2, "treasury"), GroupQuorum(1, "risk"))
    assert decision.count == 3
    assert decision.group is None
    assert decision.to_dict() == {
        "decision": "require_approvals",
        "rule": "big",
        "reason": f"rule big: withdrawal of {ONE_ETH} ETH from hot-eth matched",
        "count": 3,
        "group": None,
        "expires_after_seconds": 14_400,
        "all_of": [{"count": 2, "group": "treasury"}, {"count": 1, "group": "risk"}],
    }


def test_single_quorum_keeps_its_shape() -> None:
    rules = "  - {id: q, match: {}, action: {require_approvals: {count: 2, group: ops}}}\n"
    decision = evaluate(policy(rules), BASE)
    assert decision == RequireApprovals("q", decision.reason, 2, "ops", None)
    assert "all_of" not in decision.to_dict()


def test_decisions_list_the_limits_that_apply() -> None:
    limits = (
        "  - {id: eth-day, wallets: [hot-*], asset: ETH, window: 24h, max_amount: '10'}\n"
        "  - {id: usdc-day, wallets: [hot-*], asset: USDC, window: 24h, max_amount: '10'}\n"
        "  - {id: desk, window: 1h, scope: {clients: [desk-1]}, max_count: 5}\n"
    )
    rules = (
        "  - {id: cold, match: {wallets: [cold]}, action: deny}\n"
        "  - {id: q, match: {assets: [ETH], amount_gt: '5'},"
        " action: {require_approvals: {count: 1, group: g}}}\n"
        "  - {id: ok, match: {}, action: allow}\n"
    )
    loaded = policy(rules, limits)
    assert evaluate(loaded, replace(BASE, amount=Amount(1))) == Allow(
        "ok", "rule ok: withdrawal of 1 ETH from hot-eth matched", ("eth-day", "desk")
    )
    assert evaluate(loaded, BASE).to_dict()["limits"] == ["eth-day", "desk"]
    assert evaluate(loaded, replace(BASE, client=None, asset="DAI")).limits == ()
    denied = evaluate(loaded, replace(BASE, wallet="cold"))
    assert isinstance(denied, Deny)
    assert denied.limits == ()
    assert "limits" not in denied.to_dict()


@pytest.mark.parametrize(
    "arguments",
    [
        ("r", "x", 2, None, None),
        ("r", "x", 3, "a", None, (GroupQuorum(2, "a"),)),
        ("r", "x", 3, None, None, (GroupQuorum(2, "a"), GroupQuorum(1, "a"))),
        ("r", "x", 0, "a", None, (GroupQuorum(0, "a"),)),
        ("r", "x", 3, "a", None, (GroupQuorum(2, "a"), GroupQuorum(1, "b"))),
    ],
)
def test_inconsistent_requirements_are_refused(arguments: tuple[object, ...]) -> None:
    with pytest.raises(ValueError, match=r"group|quorums|agree"):
        RequireApprovals(*arguments)  # type: ignore[arg-type]
