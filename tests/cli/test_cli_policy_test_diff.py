"""`custody policy test` and `custody policy diff`, run as the command, without a database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import CliResult, invoke

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "worked-examples.yaml"
CASES = ROOT / "policies" / "cases" / "worked-examples.yaml"
EXAMPLE = ROOT / "policies" / "example.yaml"


def custody(*args: str, home: Path) -> CliResult:
    # A home that does not exist and a database URL nobody answers: a command that tried to open
    # the database would fail or create the folder, and the tests check for both.
    env = {
        "CUSTODY_HOME": str(home),
        "CUSTODY_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
        "COLUMNS": "200",
    }
    return invoke(args, env)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "no-home"


def test_worked_examples_pass(home: Path) -> None:
    done = custody("policy", "test", str(POLICY), "--cases", str(CASES), home=home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "24 of 24 passed" in done.stdout
    assert "FAIL" not in done.stdout
    assert not home.exists()


def test_json_output(home: Path) -> None:
    done = custody("policy", "test", str(POLICY), "--cases", str(CASES), "--json", home=home)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["policy"] == str(POLICY)
    assert len(report["digest"]) == 64
    assert all(case["passed"] for case in report["cases"])
    first = report["cases"][0]
    assert first["expected"] == {"decision": "deny", "rule": "deny-unlisted"}
    assert first["got"]["decision"] == "deny"


def test_a_mismatch_fails(tmp_path: Path, home: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "cases:\n"
        "  - name: wrong on purpose\n"
        "    facts: {type: sign_message, wallet: w, chain: ethereum, asset: ETH, amount: '0'}\n"
        "    expect: {decision: allow}\n"
        "  - name: right\n"
        "    facts: {type: sign_message, wallet: w, chain: ethereum, asset: ETH, amount: '0'}\n"
        "    expect: {decision: deny, rule: null}\n"
    )
    done = custody("policy", "test", str(EXAMPLE), "--cases", str(cases), home=home)
    assert done.returncode == 1
    assert "FAIL wrong on purpose: no rule matched: denied by default" in done.stdout
    assert "1 of 2 passed" in done.stdout
    as_json = custody("policy", "test", str(EXAMPLE), "--cases", str(cases), "--json", home=home)
    assert as_json.returncode == 1
    assert [c["passed"] for c in json.loads(as_json.stdout)["cases"]] == [False, True]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cases: []\n", "cases.yaml:1: cases: List should have at least 1 item"),
        (
            "cases:\n  - name: x\n    facts: {type: withdrawal}\n    expect: {decision: deny}\n",
            "cases.yaml:3: cases[0].facts.wallet: missing required key (and 3 more)",
        ),
        (
            "cases:\n  - name: x\n    facts: {type: contract_call, wallet: w, chain: c,"
            " asset: A, amount: '0', calldata: '0xa9059cbb'}\n    expect: {decision: deny}\n",
            "cases.yaml:3: cases[0].facts: calldata for transfer(address,uint256) does not decode",
        ),
        (
            "cases:\n  - name: x\n    facts: {type: withdrawal, wallet: w, chain: c, asset: A,"
            " amount: '0'}\n    context: {now: '2026-01-01T00:00:00'}\n"
            "    expect: {decision: deny}\n",
            "cases.yaml:4: cases[0].context.now: Input should have timezone info",
        ),
        ("cases: [\n", "cases.yaml: yaml:"),
    ],
)
def test_bad_cases_file_is_one_line(tmp_path: Path, home: Path, text: str, message: str) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(text)
    done = custody("policy", "test", str(POLICY), "--cases", str(cases), home=home)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: ")
    assert message in done.stderr


def test_diff(tmp_path: Path, home: Path) -> None:
    text = POLICY.read_text()
    changed = tmp_path / "b.yaml"
    changed.write_text(
        text.replace('amount_lte: "1000000000000000000"', 'amount_lte: "2000000000000000000"')
        .replace("  - id: no-messages\n    match: {type: sign_message}\n    action: deny\n", "")
        .replace('label: "new OTC desk", activation_delay: 24h', 'label: "new OTC desk"')
        .replace("max_count: 20", "max_count: 10")
    )
    done = custody("policy", "diff", str(POLICY), str(changed), home=home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "- rule no-messages",
        "~ rule small-in-office-hours: match changed",
        "~ allowlist treasury-destinations: ethereum 0xB401148F5a99D0d2cE73768da4203485770d56EB"
        " (new OTC desk): label or activation delay",
        "~ limit desk-hourly: max_count changed",
    ]
    as_json = json.loads(
        custody("policy", "diff", str(POLICY), str(changed), "--json", home=home).stdout
    )
    assert as_json["rules"]["removed"] == ["no-messages"]
    assert as_json["rules"]["changed"][0]["b"]["match"]["amount_lte"] == "2000000000000000000"
    assert as_json["limits"]["changed"][0]["id"] == "desk-hourly"
    assert not as_json["identical"]
    assert not home.exists()


def test_diff_sees_order_and_ignores_layout(tmp_path: Path, home: Path) -> None:
    example = EXAMPLE.read_text()
    lines = example.splitlines(keepends=True)
    rules = [line for line in lines if line.startswith("  - {id:")]
    swapped = example.replace(rules[1] + rules[2], rules[2] + rules[1])
    reordered = tmp_path / "reordered.yaml"
    reordered.write_text(swapped)
    done = custody("policy", "diff", str(EXAMPLE), str(reordered), home=home)
    assert done.stdout.splitlines() == ["~ rule order changed"]
    recommented = tmp_path / "comments.yaml"
    recommented.write_text("# another comment\n" + example.replace("window: 24h", "window: 1d"))
    same = custody("policy", "diff", str(EXAMPLE), str(recommented), home=home)
    assert same.stdout.strip() == "policies are identical (same digest)"


def test_diff_of_an_invalid_file_is_one_line(tmp_path: Path, home: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 2\nrules: [{id: r, match: {}, action: allow}]\n")
    done = custody("policy", "diff", str(POLICY), str(bad), home=home)
    assert done.returncode == 1
    assert done.stderr.strip() == f"error: {bad}:1: version: unsupported version (expected 1)"


def test_validate_refuses_an_amount_bound_without_its_asset(tmp_path: Path, home: Path) -> None:
    # The example rule as it was before issue 9: 1 ETH, or 10**18 base units of any token.
    old = EXAMPLE.read_text().replace("wallets: [hot-eth], assets: [ETH], ", "wallets: [hot-eth], ")
    path = tmp_path / "old-example.yaml"
    path.write_text(old)
    done = custody("policy", "validate", str(path), home=home)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"error: {path}:24: rules[1].match.amount_lte: counts base units of one asset: name it "
        "with assets: [SYMBOL] (or bound the USD value with amount_usd_lte)"
    )
