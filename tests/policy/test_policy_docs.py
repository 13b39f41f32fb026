"""docs/policies.md cannot drift: its rule snippets are the rules of the worked-examples policy,
and every rule of that policy is the expected decider of at least one case."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from custody.policy import load_policy_file
from custody.policy.cases import load_cases, run_cases

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "policies.md"
POLICY = ROOT / "policies" / "worked-examples.yaml"
CASES = ROOT / "policies" / "cases" / "worked-examples.yaml"
MARK = "# rules of policies/worked-examples.yaml"


def documented_rules() -> list[dict[str, object]]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    rules: list[dict[str, object]] = []
    for block in blocks:
        if block.startswith(MARK):
            rules.extend(yaml.safe_load(block))
    return rules


def test_doc_snippets_are_the_policy_rules_in_order() -> None:
    raw = yaml.safe_load(POLICY.read_text())["rules"]
    assert documented_rules() == raw


def test_every_rule_is_expected_by_a_case() -> None:
    loaded = load_policy_file(POLICY)
    cases = load_cases(CASES)
    expected = {case.expect.rule for case in cases}
    assert {rule.id for rule in loaded.policy.rules} <= expected
    assert None in expected  # and the default deny


def test_all_cases_pass() -> None:
    results = run_cases(load_policy_file(POLICY), load_cases(CASES))
    assert [r.name for r in results if not r.passed] == []
