"""The example policy files in `policies/` and the demo policy shipped in the package
(`custody/setup/policies/`) load, and the demo policy does what its header says."""

from __future__ import annotations

from pathlib import Path

import pytest

from custody.chains import Amount
from custody.policy import Allow, Deny, RequestFacts, RequireApprovals, evaluate, load_policy_file

POLICIES = Path(__file__).resolve().parents[2] / "policies"
DEMO = Path(__file__).resolve().parents[2] / "custody" / "setup" / "policies" / "demo.yaml"
POLICY_FILES = [*sorted(POLICIES.glob("*.yaml")), DEMO]
ONE_ETH = 10**18
DEMO_DESTINATION = "0xe3139eABD9dCaDCDC9e6f2848Ef4AfD85Dc0c1B7"
STRANGER = "0x539Ed2eC14EA976b7fC5dFccD3094479BF2B4C3a"


def test_there_are_policy_files() -> None:
    assert {"demo.yaml", "example.yaml", "worked-examples.yaml"} <= {p.name for p in POLICY_FILES}


@pytest.mark.parametrize("path", POLICY_FILES, ids=lambda path: path.name)
def test_every_policy_file_validates(path: Path) -> None:
    loaded = load_policy_file(path)
    assert loaded.policy.rules
    assert loaded.source_text.startswith("#"), "each policy file explains itself in a header"


def withdrawal(amount: int, destination: str | None, **changes: str) -> RequestFacts:
    fields = {"wallet": "hot-eth", "chain": "ethereum", "asset": "ETH", **changes}
    return RequestFacts(
        type="withdrawal", amount=Amount(amount), destination=destination, client=None, **fields
    )


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        (withdrawal(ONE_ETH, DEMO_DESTINATION), Allow),
        (withdrawal(1, DEMO_DESTINATION.lower()), Allow),
        (withdrawal(ONE_ETH + 1, DEMO_DESTINATION), RequireApprovals),
        (withdrawal(1, STRANGER), Deny),
        (withdrawal(1, None), Deny),
        (withdrawal(1, DEMO_DESTINATION, wallet="cold-eth"), Deny),
        (withdrawal(1, DEMO_DESTINATION, wallet="local-safe", chain="local"), Allow),
        (withdrawal(1, DEMO_DESTINATION, chain="sepolia"), Deny),
        (withdrawal(1, DEMO_DESTINATION, asset="USDC"), Deny),
        (RequestFacts("sign_message", "hot-eth", "ethereum", "ETH", Amount(0), None, None), Deny),
    ],
)
def test_demo_policy(facts: RequestFacts, expected: type) -> None:
    decision = evaluate(load_policy_file(DEMO), facts)
    assert type(decision) is expected
    if isinstance(decision, RequireApprovals):
        assert (decision.count, decision.group) == (2, "treasury")


def test_example_policy_follows_design() -> None:
    loaded = load_policy_file(POLICIES / "example.yaml")
    listed = str(loaded.policy.allowlists["treasury-destinations"][0].address)
    assert evaluate(loaded, withdrawal(1, STRANGER)).to_dict()["rule"] == "deny-unlisted"
    assert evaluate(loaded, withdrawal(ONE_ETH, listed)).to_dict()["rule"] == "small-auto"
    assert evaluate(loaded, withdrawal(ONE_ETH + 1, listed)).to_dict()["rule"] == "large"


def test_the_example_bounds_ether_not_the_base_units_of_any_token() -> None:
    # Issue 9: 10**12 base units of USDC (a million dollars) are fewer than 10**18 (1 ETH), so
    # `small-auto` let such a transfer through without approvals.
    loaded = load_policy_file(POLICIES / "example.yaml")
    listed = str(loaded.policy.allowlists["treasury-destinations"][0].address)
    usdc = evaluate(loaded, withdrawal(10**12, listed, asset="USDC"))
    assert usdc.to_dict()["rule"] == "large"
