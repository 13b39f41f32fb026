"""Validation of the new keys: every problem names file, line and key; digests are stable."""

from __future__ import annotations

import pytest
import yaml

from custody.policy import PolicyInvalid, load_policy_file, load_policy_text
from tests.policy.language_support import LISTED
from tests.policy.test_policy_files import POLICIES

HEAD = f"""\
version: 1
allowlists:
  t:
    - {{chain: ethereum, address: "{LISTED}", label: x}}
rules:
  - id: r
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyInvalid) as caught:
        load_policy_text(text, "p.yaml")
    return caught.value.message.splitlines()


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("match: {amount_usd_lte: 250000}", "p.yaml:7: rules[0].match.amount_usd_lte: not a USD"),
        ("match: {amount_usd_gt: '1e6'}", "p.yaml:7: rules[0].match.amount_usd_gt: not a USD"),
        ("match: {amount_usd_gt: '-1.00'}", "p.yaml:7: rules[0].match.amount_usd_gt: not a USD"),
        ("match: {methods: ['transfer(address, uint256)']}", "rules[0].match.methods[0]: not a"),
        ("match: {methods: ['0xa9059cb']}", "p.yaml:7: rules[0].match.methods[0]: not a selector"),
        # Sizes past int()'s 4,300-digit limit: the reason, not Python's ValueError text.
        (f"match: {{methods: ['f(uint{'8' * 5000})']}}", "rules[0].match.methods[0]: not a"),
        (f"match: {{methods: ['f(bytes{'3' * 5000})']}}", "rules[0].match.methods[0]: not a"),
        ("match: {methods: []}", "p.yaml:7: rules[0].match.methods: must not be empty"),
        ("match: {contracts: ['0x1234']}", "p.yaml:7: rules[0].match.contracts[0]: not an address"),
        ("match: {clients: [desk-1, '']}", "p.yaml:7: rules[0].match.clients[1]: not a name"),
        (
            "match: {allow_delegatecall: false}",
            "rules[0].match.allow_delegatecall: can only be true",
        ),
        ("match: {allow_delegatecall: 'true'}", "match.allow_delegatecall: can only be true"),
        ("match: {allow_delegatecall: true}\n    action: deny", "rules[0]: allow_* keys make no"),
        (
            "match: {allow_everything: true}",
            "p.yaml:7: rules[0].match.allow_everything: unknown key",
        ),
        ("match: {time_window: {days: [mon]}}", "rules[0].match.time_window.tz: missing required"),
        ("match: {time_window: {days: [monday], tz: UTC}}", "time_window.days[0]: Input should be"),
        (
            "match: {time_window: {days: [mon, mon], tz: UTC}}",
            "time_window.days: mon is listed twice",
        ),
        ("match: {time_window: {hours: '9-17', tz: UTC}}", "time_window.hours: not hours like"),
        ("match: {time_window: {hours: '18:00-18:00', tz: UTC}}", "time_window.hours: an empty"),
        ("match: {time_window: {days: [mon], tz: Mars/Base}}", "tz: unknown time zone Mars/Base"),
        ("match: {time_window: {tz: UTC}}", "time_window: a time window needs days or hours"),
        (
            "match: {}\n    action: {require_approvals: {all_of: []}}",
            "p.yaml:8: rules[0].action.require_approvals.all_of: must not be empty",
        ),
        (
            "match: {}\n    action: {require_approvals: {all_of: [{count: 1, group: a},"
            " {count: 2, group: a}]}}",
            "rules[0].action.require_approvals.all_of: group a is listed twice",
        ),
        (
            "match: {}\n    action: {require_approvals: {count: 1,"
            " all_of: [{count: 1, group: a}]}}",
            "rules[0].action.require_approvals.count: not allowed together with all_of",
        ),
    ],
)
def test_rule_problems(lines: str, expected: str) -> None:
    text = HEAD + f"    {lines}\n" + ("" if "action" in lines else "    action: allow\n")
    found = problems(text)
    assert any(expected in line for line in found), found


RULE = "rules: [{id: r, match: {}, action: allow}]\n"


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ("{id: l, window: 1h, max_count: 1}", "limits[0]: needs a scope"),
        (
            "{id: l, wallets: [w], asset: ETH, scope: {chains: [c]}, window: 1h, max_count: 1}",
            "limits[0]: write either wallets/asset or scope, not both",
        ),
        ("{id: l, window: 1h, scope: {chains: [c]}}", "limits[0]: needs max_amount or max_count"),
        (
            "{id: l, window: 1h, scope: {chains: [c]}, max_amount: '1'}",
            "limits[0]: max_amount needs exactly one asset",
        ),
        ("{id: l, window: 30s, scope: {chains: [c]}, max_count: 1}", "window must be between"),
        ("{id: l, window: 1h, scope: {chains: [c]}, max_count: 0}", "limits[0].max_count: Input"),
        ("{id: l, window: 1h, scope: {}, max_count: 1, on_exceed: allow}", "cannot be allow"),
        ("{id: l, window: 1h, scope: {colour: red}, max_count: 1}", "scope.colour: unknown key"),
    ],
)
def test_limit_problems(limit: str, expected: str) -> None:
    found = problems(f"version: 1\nlimits:\n  - {limit}\n{RULE}")
    assert any(line.startswith("p.yaml:3: ") and expected in line for line in found), found


def test_activation_delay_is_a_duration() -> None:
    text = (
        "version: 1\nallowlists:\n  t:\n"
        f"    - {{chain: ethereum, address: '{LISTED}', label: x, activation_delay: 24}}\n{RULE}"
    )
    assert problems(text) == [
        "p.yaml:4: allowlists.t[0].activation_delay: not a duration like 30m, 24h or 7d"
    ]


@pytest.mark.parametrize("path", sorted(POLICIES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_policies_survive_a_round_trip(path: object) -> None:
    loaded = load_policy_file(path)  # type: ignore[arg-type]
    data = loaded.policy.model_dump(mode="json", exclude_none=True)
    again = load_policy_text(yaml.safe_dump(data), "again.yaml")
    assert again.digest == loaded.digest


def test_example_digest_is_unchanged_by_the_new_keys() -> None:
    # Optional keys left out must not change what a file digests to. Pinned before issue 3;
    # pinned again when the example's amount bound had to name its asset (issue 9).
    loaded = load_policy_file(POLICIES / "example.yaml")
    assert loaded.digest == EXAMPLE_DIGEST


def test_method_signatures_and_selectors_digest_alike() -> None:
    by_name = load_policy_text(
        "version: 1\nrules: [{id: r, match: {methods: ['transfer(address,uint256)']},"
        " action: allow}]\n",
        "a.yaml",
    )
    by_selector = load_policy_text(
        "version: 1\nrules: [{id: r, match: {methods: ['0xA9059CBB']}, action: allow}]\n", "b.yaml"
    )
    assert by_name.digest == by_selector.digest


EXAMPLE_DIGEST = "0cb4b4c67ee68ae594e75a934175055f4af6613c27efda4d5b1a7f62dde2c2f3"
