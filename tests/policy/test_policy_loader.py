"""Loading: each problem as `file:line: path: message`, and digests that mean something."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import rfc8785

from custody.chains import Amount
from custody.errors import ValidationFailed
from custody.policy import PolicyInvalid, load_policy_file, load_policy_text
from custody.policy.yamlsource import MAX_POLICY_BYTES

ADDRESS = "0x0DbBACFd06dbdB317eefEFAfb9fC5A06Ea04CD2A"

VALID = f"""\
version: 1
allowlists:
  treasury:
    - {{chain: ethereum, address: "{ADDRESS}", label: deposit}}
limits:
  - {{id: daily, wallets: [hot-eth], asset: ETH, window: 24h, max_amount: "100"}}
rules:
  - id: small
    match: {{type: withdrawal, assets: [ETH], amount_lte: "10"}}
    action: allow
  - id: big
    match: {{type: withdrawal}}
    action: {{require_approvals: {{count: 2, group: treasury}}}}
"""


RULE = "rules:\n  - {id: r, match: {}, action: allow}\n"
LIMIT = "  - {id: l, wallets: [w], asset: ETH, window: 1h, max_amount: '1'}\n"


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyInvalid) as caught:
        load_policy_text(text, "policies/x.yaml")
    assert caught.value.status == 422
    assert isinstance(caught.value, ValidationFailed)
    return caught.value.message.splitlines()


def with_rule_match(match: str) -> str:
    """VALID with one more rule at the end whose `match` keys sit on line 16."""
    return VALID + f"  - id: extra\n    match:\n      {match}\n    action: deny\n"


def test_valid_policy_loads() -> None:
    loaded = load_policy_text(VALID, "policies/x.yaml")
    assert [rule.id for rule in loaded.policy.rules] == ["small", "big"]
    assert loaded.policy.limits[0].window == 86_400
    assert loaded.policy.limits[0].max_amount == Amount(100)
    assert loaded.source_text == VALID
    assert len(loaded.digest) == 64


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.5", "not an integer string"),
        ("1000", "not an integer string"),
        ("1e18", "not an integer string"),
        ("-1", "not an integer string"),
        ("'-1'", "not an integer string"),
        ("'1e18'", "not an integer string"),
        ("'1.5'", "not an integer string"),
        ("'+1'", "not an integer string"),
        ("'1_000'", "not an integer string"),
        ("' 1'", "not an integer string"),
        ("''", "not an integer string"),
        ("0x10", "not an integer string"),
        ("true", "not an integer string"),
        ("null", "empty value (leave the key out instead)"),
        ("", "empty value (leave the key out instead)"),
        ("'007'", "an integer string must not start with 0"),
        (f"'{2**256}'", "larger than 2**256 - 1"),
        ("'" + "9" * 5000 + "'", "larger than 2**256 - 1"),
    ],
)
@pytest.mark.parametrize("key", ["amount_lte", "amount_lt", "amount_gte", "amount_gt"])
def test_amounts_must_be_integer_strings(key: str, value: str, message: str) -> None:
    assert problems(with_rule_match(f"{key}: {value}")) == [
        f"policies/x.yaml:16: rules[2].match.{key}: {message}"
    ]


@pytest.mark.parametrize("key", ["amount_lte", "amount_lt", "amount_gte", "amount_gt"])
def test_an_amount_bound_without_an_asset_is_refused(key: str) -> None:
    # Base units of which asset? 10**18 is 1 ETH, but 10**12 USDC (issue 9).
    usd = key.replace("amount_", "amount_usd_")
    assert problems(with_rule_match(f"{key}: '5'")) == [
        f"policies/x.yaml:16: rules[2].match.{key}: counts base units of one asset: name it "
        f"with assets: [SYMBOL] (or bound the USD value with {usd})"
    ]


def test_an_amount_bound_over_several_assets_is_refused() -> None:
    assert problems(with_rule_match("amount_gt: '5'\n      assets: [ETH, USDC]")) == [
        "policies/x.yaml:16: rules[2].match.amount_gt: counts base units of one asset, but "
        "assets lists 2 (ETH, USDC): write one rule per asset (or bound the USD value with "
        "amount_usd_gt)"
    ]


def test_a_usd_bound_needs_no_asset() -> None:
    load_policy_text(with_rule_match("amount_usd_gt: '5.00'"), "x.yaml")


def test_largest_amount_is_accepted() -> None:
    load_policy_text(with_rule_match(f"amount_lte: '{2**256 - 1}'\n      assets: [ETH]"), "x.yaml")


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ("type: transfer", "rules[2].match.type: Input should be"),
        ("wallets: hot-eth", "rules[2].match.wallets: Input should be a valid tuple"),
        ("wallets: []", "rules[2].match.wallets: must not be empty"),
        ("wallets: ['hot eth']", "rules[2].match.wallets[0]: not a name or glob"),
        ("chains: [no]", "rules[2].match.chains[0]: not a name"),
        ("assets: []", "rules[2].match.assets: must not be empty"),
        (
            "destination_in: nowhere",
            "rules[2].match.destination_in[0]: unknown allowlist 'nowhere'",
        ),
        (
            "destination_not_in: [treasury, x]",
            "rules[2].match.destination_not_in[1]: unknown allowlist 'x'",
        ),
        ("colour: red", "rules[2].match.colour: unknown key"),
    ],
)
def test_match_problems(match: str, expected: str) -> None:
    [line] = problems(with_rule_match(match))
    assert line.startswith(f"policies/x.yaml:16: {expected}")


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("action: alow", "13: rules[1].action: not an action"),
        ("action: {deny: true}", "13: rules[1].action: not an action"),
        (
            "action: {require_approvals: {count: 0, group: g}}",
            "13: rules[1].action.require_approvals.count: Input should be greater than or equal",
        ),
        (
            "action: {require_approvals: {count: '2', group: g}}",
            "13: rules[1].action.require_approvals.count: Input should be a valid integer",
        ),
        (
            "action: {require_approvals: {count: 2.0, group: g}}",
            "13: rules[1].action.require_approvals.count: Input should be a valid integer",
        ),
        (
            "action: {require_approvals: {count: 2}}",
            "13: rules[1].action.require_approvals.group: missing required key",
        ),
        (
            "action: {require_approvals: {count: 2, group: g, expires_after: 3600}}",
            "13: rules[1].action.require_approvals.expires_after: not a duration",
        ),
        (
            "action: {require_approvals: {count: 2, group: g}, notify: x}",
            "13: rules[1].action.notify: unknown key",
        ),
    ],
)
def test_action_problems(action: str, expected: str) -> None:
    text = VALID.replace("action: {require_approvals: {count: 2, group: treasury}}", action)
    [line] = problems(text)
    assert line.startswith(f"policies/x.yaml:{expected}")


def test_several_problems_one_line_each_in_file_order() -> None:
    text = (
        VALID.replace('"100"}', "100}")
        .replace("id: big", "id: small")
        .replace('amount_lte: "10"', "amount_lte: 10.0")
        .replace(ADDRESS, ADDRESS[:-1] + "a")
    )
    assert problems(text) == [
        "policies/x.yaml:4: allowlists.treasury[0].address: "
        "mixed-case address with an invalid EIP-55 checksum",
        "policies/x.yaml:6: limits[0].max_amount: not an integer string",
        "policies/x.yaml:9: rules[0].match.amount_lte: not an integer string",
    ]
    # Cross-references are checked once every field is valid.
    assert problems(VALID.replace("id: big", "id: small")) == [
        "policies/x.yaml:11: rules[1].id: duplicate id 'small' (first used by rules[0])"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\nrules: []\n", "x.yaml:2: rules: a policy needs at least one rule"),
        (
            "version: 2\nrules: [{id: r, match: {}, action: deny}]\n",
            "x.yaml:1: version: unsupported version (expected 1)",
        ),
        (
            "version: true\nrules: [{id: r, match: {}, action: deny}]\n",
            "x.yaml:1: version: unsupported version",
        ),
        (
            "version: 1.0\nrules: [{id: r, match: {}, action: deny}]\n",
            "x.yaml:1: version: unsupported version",
        ),
        ("version: 1\n", "x.yaml:1: rules: missing required key"),
        ("[]\n", "x.yaml:1: policy: Input should be a valid dictionary"),
        (
            "version: 1\nrules:\n  - {id: r, action: allow}\n",
            "x.yaml:3: rules[0].match: missing required key",
        ),
        (
            f"version: 1\n{RULE}limits:\n{LIMIT.replace('1h', '1w')}",
            "x.yaml:5: limits[0].window: not a duration",
        ),
        (
            f"version: 1\n{RULE}  - {{id: r, match: {{}}, action: deny}}\n",
            "x.yaml:4: rules[1].id: duplicate id 'r'",
        ),
        (
            f"version: 1\n{RULE}limits:\n{LIMIT}{LIMIT}",
            "x.yaml:6: limits[1].id: duplicate id 'l'",
        ),
        (
            f"version: 1\nallowlists:\n  'a b': []\n{RULE}",
            "x.yaml:3: allowlists.a b: not a name",
        ),
    ],
)
def test_structure_problems(text: str, expected: str) -> None:
    [line] = problems(text)
    assert f"policies/{line}".startswith(f"policies/policies/{expected}")


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (ADDRESS.lower(), None),
        ("0x" + ADDRESS[2:].upper(), None),
        (ADDRESS[:-1] + "a", "mixed-case address with an invalid EIP-55 checksum"),
        (ADDRESS[:-1], "not an address"),
        (ADDRESS[2:], "not an address"),
    ],
)
def test_addresses(address: str, expected: str | None) -> None:
    text = VALID.replace(ADDRESS, address)
    if expected is None:
        loaded = load_policy_text(text, "x.yaml")
        assert str(loaded.policy.allowlists["treasury"][0].address) == ADDRESS
    else:
        [line] = problems(text)
        assert line.startswith(f"policies/x.yaml:4: allowlists.treasury[0].address: {expected}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\nversion: 1\n", "x.yaml:2: yaml: duplicate key 'version' (first on line 1)"),
        (VALID + "rules: []\n", "x.yaml:14: yaml: duplicate key 'rules' (first on line 7)"),
        (
            VALID.replace("action: allow", "action: allow\n    action: deny"),
            "x.yaml:11: yaml: duplicate key 'action' (first on line 10)",
        ),
        ("a: &x [1]\nb: *x\n", "x.yaml:1: yaml: anchors and aliases are not allowed"),
        ("a: &x 1\n", "x.yaml:1: yaml: anchors and aliases are not allowed"),
        ("version: !!int '1'\n", "x.yaml:1: yaml: explicit tags are not allowed"),
        ("a: !!binary aGk=\n", "x.yaml:1: yaml: explicit tags are not allowed"),
        ("a: !!python/object:os.system x\n", "x.yaml:1: yaml: explicit tags are not allowed"),
        ("<<: {version: 1}\n", "x.yaml:1: yaml: merge keys (<<) are not allowed"),
        ("1: a\n", "x.yaml:1: yaml: keys must be strings"),
        ("yes: a\n", "x.yaml:1: yaml: keys must be strings"),
        (
            "a: [\n",
            "x.yaml:2: yaml: while parsing a flow node, expected the node content, "
            "but found '<stream end>'",
        ),
        (
            "a: 1\n---\nb: 2\n",
            "x.yaml:2: yaml: expected a single document in the stream, but found another document",
        ),
        ("", "x.yaml: yaml: empty document"),
        ("# only a comment\n", "x.yaml: yaml: empty document"),
        ("[" * 100 + "]" * 100, "x.yaml:1: yaml: nested too deeply"),
        ("a: " + "9" * 5000 + "\n", "x.yaml: yaml: Exceeds the limit"),
    ],
)
def test_yaml_problems(text: str, expected: str) -> None:
    [line] = problems(text)
    assert line.startswith(f"policies/{expected}")


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    assert problems("\n".join(lines)) == [
        "policies/x.yaml:1: yaml: anchors and aliases are not allowed"
    ]


def test_size_limit() -> None:
    padding = "#" + "x" * MAX_POLICY_BYTES + "\n"
    assert problems(padding + VALID) == ["policies/x.yaml: yaml: larger than 1 MiB"]


def test_files(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(VALID, encoding="utf-8")
    assert load_policy_file(path).digest == load_policy_text(VALID, "other").digest
    assert load_policy_file(path).source == str(path)
    path.write_bytes(b"version: 1\n\xff\n")
    with pytest.raises(PolicyInvalid, match=r"p\.yaml: file: not UTF-8 text"):
        load_policy_file(path)
    path.write_bytes(b"#" * (MAX_POLICY_BYTES + 1))
    with pytest.raises(PolicyInvalid, match=r"p\.yaml: file: larger than 1 MiB"):
        load_policy_file(path)
    with pytest.raises(PolicyInvalid, match=r"missing\.yaml: file: No such file"):
        load_policy_file(tmp_path / "missing.yaml")


SAME_MEANING = [
    VALID.replace("rules:\n", "# the rules\nrules:   \n\n"),
    VALID.replace(
        '    match: {type: withdrawal, assets: [ETH], amount_lte: "10"}',
        "    match:\n      amount_lte: '10'\n      assets: [ETH]\n      type: withdrawal",
    ),
    VALID.replace("window: 24h", "window: 1d"),
    VALID.replace(ADDRESS, ADDRESS.lower()),
    VALID.replace("limits:", "limits: # not enforced yet"),
    "# header\n" + VALID.replace("version: 1", "version: 1  # format"),
]

OTHER_MEANING = [
    VALID.replace('amount_lte: "10"', 'amount_lte: "11"'),
    VALID.replace("count: 2", "count: 3"),
    VALID.replace("label: deposit", "label: deposits"),
    VALID.replace("id: big", "id: large"),
    VALID.replace("window: 24h", "window: 23h"),
    VALID.replace("amount_lte", "amount_lt"),
    # Rule order is meaning: the first match decides.
    VALID.replace(
        '  - id: small\n    match: {type: withdrawal, assets: [ETH], amount_lte: "10"}\n'
        "    action: allow\n",
        "",
    )
    + '  - id: small\n    match: {type: withdrawal, assets: [ETH], amount_lte: "10"}\n'
    "    action: allow\n",
]


@pytest.mark.parametrize("text", SAME_MEANING)
def test_digest_ignores_layout_and_comments(text: str) -> None:
    assert text != VALID
    assert load_policy_text(text, "a").digest == load_policy_text(VALID, "b").digest


@pytest.mark.parametrize("text", OTHER_MEANING)
def test_digest_changes_with_meaning(text: str) -> None:
    assert load_policy_text(text, "a").digest != load_policy_text(VALID, "a").digest


def test_digest_is_sha256_of_canonical_json() -> None:
    loaded = load_policy_text(VALID, "x")
    data = json.loads(json.dumps(loaded.policy.model_dump(mode="json", exclude_none=True)))
    assert data["rules"][1]["action"] == {"require_approvals": {"count": 2, "group": "treasury"}}
    assert data["rules"][0]["action"] == "allow"
    assert loaded.digest == hashlib.sha256(rfc8785.dumps(data)).hexdigest()
