"""Properties that must hold for all inputs, not just the ones we thought of."""

from __future__ import annotations

import fnmatch
import operator
from collections.abc import Callable

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from custody.chains import Amount
from custody.policy import Allow, Deny, PolicyInvalid, RequestFacts, evaluate, load_policy_text
from custody.policy.predicates import FactMatchesGlob

ADDRESS = "0x0DbBACFd06dbdB317eefEFAfb9fC5A06Ea04CD2A"
MAX_AMOUNT = 2**256 - 1
amounts = st.integers(min_value=0, max_value=MAX_AMOUNT) | st.integers(min_value=0, max_value=10)
OPERATORS: dict[str, Callable[[int, int], bool]] = {
    "amount_lte": operator.le,
    "amount_lt": operator.lt,
    "amount_gte": operator.ge,
    "amount_gt": operator.gt,
}


def facts(amount: int, destination: str | None = ADDRESS) -> RequestFacts:
    return RequestFacts(
        "withdrawal", "hot-eth", "ethereum", "ETH", Amount(amount), destination, None
    )


@given(threshold=amounts, amount=amounts, key=st.sampled_from(sorted(OPERATORS)))
@example(threshold=10**18, amount=10**18, key="amount_lte")
@example(threshold=10**18, amount=10**18 + 1, key="amount_lte")
def test_allowed_iff_amount_within_threshold(threshold: int, amount: int, key: str) -> None:
    loaded = load_policy_text(
        "version: 1\nrules:\n"
        f"  - {{id: r, match: {{assets: [ETH], {key}: '{threshold}'}}, action: allow}}\n",
        "p.yaml",
    )
    decision = evaluate(loaded, facts(amount))
    expected = Allow if OPERATORS[key](amount, threshold) else Deny
    assert type(decision) is expected


@given(flips=st.lists(st.booleans(), min_size=40, max_size=40))
def test_allowlist_ignores_address_case(flips: list[bool]) -> None:
    loaded = load_policy_text(
        "version: 1\n"
        f"allowlists: {{t: [{{chain: ethereum, address: '{ADDRESS}', label: x}}]}}\n"
        "rules: [{id: r, match: {destination_in: t}, action: allow}]\n",
        "p.yaml",
    )
    digits = "".join(
        c.upper() if flip else c.lower() for c, flip in zip(ADDRESS[2:], flips, strict=True)
    )
    assert isinstance(evaluate(loaded, facts(1, "0x" + digits)), Allow)


globs = st.text(alphabet="ab-*?[]!", min_size=1, max_size=8)


@given(names=st.lists(globs, min_size=1, max_size=4), wallet=st.text(alphabet="ab-", max_size=8))
def test_wallet_globs_agree_with_fnmatchcase(names: list[str], wallet: str) -> None:
    predicate = FactMatchesGlob.build(lambda f: f.wallet, names)
    probe = RequestFacts("withdrawal", wallet, "ethereum", "ETH", Amount(0), None, None)
    assert predicate(probe) == any(fnmatch.fnmatchcase(wallet, name) for name in names)


@given(st.text(max_size=300))
@example("version: 1\nrules: [{id: r, match: {}, action: allow}]")
@example("version: 1\nrules: [{id: r, match: {}, action: {require_approvals: 1}}]")
def test_loader_raises_only_policy_invalid(text: str) -> None:
    message = ""
    try:
        load_policy_text(text, "fuzz.yaml")
    except PolicyInvalid as error:
        message = error.message
    assert all(line.startswith("fuzz.yaml") for line in message.splitlines())


@given(
    bound=amounts,
    count=st.integers(min_value=1, max_value=100),
    wallets=st.lists(st.sampled_from(["hot-eth", "hot-*", "cold"]), min_size=1, unique=True),
    flow=st.booleans(),
)
def test_digest_survives_a_yaml_round_trip(
    bound: int, count: int, wallets: list[str], flow: bool
) -> None:
    text = (
        "version: 1\n"
        f"allowlists: {{t: [{{chain: ethereum, address: '{ADDRESS.lower()}', label: x}}]}}\n"
        "rules:\n"
        f"  - {{id: a, match: {{wallets: {wallets}, assets: [ETH], amount_lte: '{bound}'}},"
        " action: allow}\n"
        "  - {id: b, match: {destination_not_in: t}, action: deny}\n"
        f"  - {{id: c, match: {{}}, action: {{require_approvals: {{count: {count}, group: g}}}}}}\n"
    )
    loaded = load_policy_text(text, "a.yaml")
    data = loaded.policy.model_dump(mode="json", exclude_none=True)
    again = load_policy_text(yaml.safe_dump(data, default_flow_style=flow), "b.yaml")
    assert again.digest == loaded.digest
    assert again.policy == loaded.policy
