"""Bitcoin facts in policy table tests: segwit addresses on allowlists, amounts in sats, fees."""

from __future__ import annotations

from pathlib import Path

import pytest

from custody.policy import load_policy_text
from custody.policy.cases import load_cases, run_cases
from custody.policy.errors import PolicyInvalid

ELSEWHERE = "bc1qzyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygsszvapf"
DESK = "bc1qyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zc6v074"
OTHER_DESK = "bc1q2424242424242424242424242424242484yscm"
BLOCKED = "bc1qvenxvenxvenxvenxvenxvenxvenxvenxggpksv"
POLICY = f"""
version: 1
allowlists:
  desks:
    - {{chain: bitcoin, address: "{DESK.upper()}", label: "OTC desk"}}
    - {{chain: bitcoin, address: "{OTHER_DESK}", label: "OTC desk 2"}}
    - {{chain: bitcoin, address: "{BLOCKED}", label: "also blocked"}}
  blocked:
    - {{chain: bitcoin, address: "{BLOCKED}", label: "sanctioned"}}
rules:
  - {{id: dear, match: {{type: bitcoin_psbt, assets: [BTC], fee_gt: "50000"}}, action: deny}}
  - {{id: burning, match: {{type: bitcoin_psbt, fee_rate_gt: "200"}}, action: deny}}
  - {{id: no-blocked, match: {{type: bitcoin_psbt, destination_in: [blocked]}}, action: deny}}
  - id: listed
    match: {{type: bitcoin_psbt, destination_in: [desks], assets: [BTC], amount_lte: "100000000"}}
    action: allow
"""
CASES = f"""
defaults:
  facts: {{type: bitcoin_psbt, wallet: vault, chain: bitcoin, asset: BTC, destination: "{DESK}",
          fee: "2000"}}
  context: {{now: "2026-01-05T10:00:00Z", policy_applied_at: "2026-01-03T00:00:00Z"}}
cases:
  - name: one BTC to the desk
    facts: {{amount: "100000000"}}
    expect: {{decision: allow, rule: listed}}
  - name: over a BTC
    facts: {{amount: "100000001"}}
    expect: {{decision: deny, rule: null}}
  - name: elsewhere
    facts: {{amount: "1", destination: "{ELSEWHERE}"}}
    expect: {{decision: deny, rule: null}}
  - name: a fee-burning PSBT
    facts: {{amount: "1", fee: "60000"}}
    expect: {{decision: deny, rule: dear}}
  - name: a fee rate above 200 sat/vB
    facts: {{amount: "1", fee_rate: "201"}}
    expect: {{decision: deny, rule: burning}}
  - name: a fee rate of 200 sat/vB
    facts: {{amount: "1", fee_rate: "200"}}
    expect: {{decision: allow, rule: listed}}
  - name: a batch to two desks
    facts: {{amount: "2", destination: null, destinations: ["{DESK}", "{OTHER_DESK}"]}}
    expect: {{decision: allow, rule: listed}}
  - name: a batch with one address off the list
    facts: {{amount: "2", destination: null, destinations: ["{DESK}", "{ELSEWHERE}"]}}
    expect: {{decision: deny, rule: null}}
  - name: a batch with one blocked address
    facts: {{amount: "2", destination: null, destinations: ["{DESK}", "{BLOCKED}"]}}
    expect: {{decision: deny, rule: no-blocked}}
"""


def test_bitcoin_cases(tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(CASES)
    results = run_cases(load_policy_text(POLICY, "btc.yaml"), load_cases(cases))
    assert [r.name for r in results if not r.passed] == []


def test_a_bech32_address_with_a_wrong_checksum_is_refused() -> None:
    broken = POLICY.replace(DESK.upper(), DESK.upper()[:-1] + "Q")
    with pytest.raises(PolicyInvalid, match="not a valid segwit address"):
        load_policy_text(broken, "btc.yaml")
