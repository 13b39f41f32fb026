"""Limits: both spellings, scopes, the pure fit check, and settling a decision with checks."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custody.chains import Amount, InvalidPayload
from custody.policy import (
    Allow,
    Deny,
    LimitUsage,
    RequireApprovals,
    apply_limit_checks,
    check_limit,
    evaluate,
    limit_by_id,
    limits_for,
)
from custody.policy.limits_schema import Limit
from tests.policy.language_support import BASE, policy

LIMITS = """\
  - {id: short, wallets: [hot-eth], asset: ETH, window: 24h, max_amount: '100'}
  - id: scoped
    window: 1h
    scope: {wallets: ['hot-*'], assets: [ETH], chains: [ethereum], clients: [desk-1]}
    max_amount: '50'
    max_count: 3
    on_exceed: {require_approvals: {count: 2, group: risk, expires_after: 1h}}
  - {id: count-only, window: 7d, scope: {chains: [ethereum]}, max_count: 10, on_exceed: deny}
  - {id: other-chain, window: 7d, scope: {chains: [sepolia]}, max_count: 1}
"""
RULES = (
    "  - {id: q, match: {assets: [ETH], amount_gt: '40'},"
    " action: {require_approvals: {count: 1, group: ops, expires_after: 2h}}}\n"
    "  - {id: ok, match: {}, action: allow}\n"
)
LOADED = policy(RULES, LIMITS)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, ("short", "scoped", "count-only")),
        ({"client": "desk-2"}, ("short", "count-only")),
        ({"wallet": "hot-btc"}, ("scoped", "count-only")),
        ({"asset": "USDC"}, ("count-only",)),
        ({"chain": "sepolia"}, ("short", "other-chain")),
    ],
)
def test_which_limits_apply(changes: dict[str, str], expected: tuple[str, ...]) -> None:
    assert limits_for(LOADED, replace(BASE, **changes)) == expected


def test_short_form_keeps_its_meaning() -> None:
    limit = limit_by_id(LOADED, "short")
    assert limit.scope_or_short.wallets == ("hot-eth",)
    assert limit.scope_or_short.assets == ("ETH",)
    assert limit.on_exceed_action.kind == "deny"


@pytest.mark.parametrize(
    ("limit_id", "used", "count", "amount", "fits"),
    [
        ("short", 0, 0, 100, True),
        ("short", 60, 5, 40, True),
        ("short", 60, 5, 41, False),
        ("scoped", 0, 2, 1, True),
        ("scoped", 0, 3, 1, False),
        ("scoped", 50, 0, 1, False),
        ("count-only", 10**30, 9, 10**30, True),
        ("count-only", 0, 10, 0, False),
    ],
)
def test_check_limit(limit_id: str, used: int, count: int, amount: int, fits: bool) -> None:
    check = check_limit(limit_by_id(LOADED, limit_id), LimitUsage(used, count), Amount(amount))
    assert check.fits is fits
    assert check.reason.startswith(f"limit {limit_id}: ")


def _settle(amount: int, usage: dict[str, LimitUsage]) -> object:
    decision = evaluate(LOADED, replace(BASE, amount=Amount(amount)))
    checks = [
        check_limit(limit_by_id(LOADED, i), usage[i], Amount(amount)) for i in decision.limits
    ]
    return apply_limit_checks(decision, checks)


FRESH = {i: LimitUsage(0, 0) for i in ("short", "scoped", "count-only")}


def test_settle_allows_when_everything_fits() -> None:
    assert isinstance(_settle(10, FRESH), Allow)


def test_settle_denies_on_a_deny_limit() -> None:
    decision = _settle(10, {**FRESH, "short": LimitUsage(95, 1)})
    assert isinstance(decision, Deny)
    assert decision.rule_id == "limit:short"
    assert "exceeds max_amount 100 in 1d" in decision.reason


def test_settle_escalates_an_allow_to_approvals() -> None:
    decision = _settle(10, {**FRESH, "scoped": LimitUsage(45, 0)})
    assert isinstance(decision, RequireApprovals)
    assert (decision.count, decision.group, decision.expires_after_seconds) == (2, "risk", 3600)
    assert decision.rule_id == "ok"
    assert decision.limits == ("short", "scoped", "count-only")


def test_settle_merges_quorums_and_takes_the_shorter_expiry() -> None:
    decision = _settle(45, {**FRESH, "scoped": LimitUsage(10, 0)})
    assert isinstance(decision, RequireApprovals)
    assert [(q.group, q.count) for q in decision.quorums] == [("ops", 1), ("risk", 2)]
    assert decision.expires_after_seconds == 3600


def test_settle_denies_when_a_limit_was_not_checked() -> None:
    decision = evaluate(LOADED, replace(BASE, amount=Amount(1)))
    assert isinstance(apply_limit_checks(decision, []), Deny)


def test_settle_keeps_a_deny() -> None:
    denied = Deny("r", "no")
    assert apply_limit_checks(denied, []) is denied


@given(
    maximum=st.integers(min_value=0, max_value=10**6),
    amounts=st.lists(st.integers(min_value=0, max_value=10**5), max_size=40),
    released=st.lists(st.booleans(), max_size=40),
)
def test_admitted_amounts_never_exceed_the_limit(
    maximum: int, amounts: list[int], released: list[bool]
) -> None:
    # Any interleaving of requests and releases (rejection, expiry, cancellation, failure):
    # what is reserved at any moment stays within the limit when each request is checked.
    limit = Limit.model_validate(
        {"id": "l", "window": "1h", "scope": {"assets": ["ETH"]}, "max_amount": str(maximum)}
    )
    reserved: list[int] = []
    for index, amount in enumerate(amounts):
        if index < len(released) and released[index] and reserved:
            reserved.pop(0)
        usage = LimitUsage(sum(reserved), len(reserved))
        if check_limit(limit, usage, Amount(amount)).fits:
            reserved.append(amount)
        assert sum(reserved) <= maximum


@pytest.mark.parametrize("bad", [-1, True, 1.5])
def test_a_limit_check_cannot_be_given_a_bad_amount(bad: object) -> None:
    # check_limit takes an Amount, and no Amount holds these.
    with pytest.raises(InvalidPayload):
        check_limit(limit_by_id(LOADED, "short"), LimitUsage(0, 0), Amount(bad))  # type: ignore[arg-type]
