"""Every refusal of the CLI: a non-zero exit, exactly one line on stderr starting `error:`,
with `--json` a JSON object with an "error" key on stdout, and nothing changed in the database.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.cli.conftest import CliHome
from tests.support.cli import CliResult

pytestmark = pytest.mark.slow

BROKEN_POLICY = """\
version: 1
rules:
  - {id: small, match: {type: withdrawal, amount_lte: 1.5}, action: allow}
"""

CASES = {
    "unknown chain": ["wallets", "create", "w1", "--chain", "nochain", "--key", "{x}"],
    "unknown key": ["wallets", "create", "w2", "--chain", "ethereum", "--key", "nokey"],
    "duplicate wallet": ["wallets", "create", "hot", "--chain", "ethereum", "--key", "{x}"],
    "duplicate key": ["keys", "generate", "--label", "{x}", "--algorithm", "secp256k1"],
    "bad key label": ["keys", "generate", "--label", "Bad Label!", "--algorithm", "secp256k1"],
    "bad algorithm": ["keys", "generate", "--label", "fine", "--algorithm", "rsa"],
    "bad chain name": ["chains", "add", "Bad_Chain", "--evm-chain-id", "777"],
    "duplicate chain id": ["chains", "add", "mainnet-again", "--evm-chain-id", "1"],
    "broken policy": ["policy", "validate", "{home}/broken.yaml"],
    "missing policy file": ["policy", "validate", "{home}/no-such.yaml"],
    "P-256 client key": ["clients", "add", "desk-p256", "--public-key", "{home}/p256.pem"],
    "garbage client key": ["clients", "add", "desk-bad", "--public-key", "{home}/garbage.pem"],
    "missing option": ["wallets", "create", "w3", "--key", "{x}"],
    "private key as client key": [
        "clients",
        "add",
        "desk-priv",
        "--public-key",
        "{home}/private.pem",
    ],
}
HUMAN_CASES = ["unknown chain", "bad algorithm", "broken policy", "P-256 client key"]
TABLES = ["ledger_entries", "keys", "wallets", "clients", "chains", "policy_versions"]


@dataclass
class Outcomes:
    home: Path
    as_json: dict[str, CliResult]
    human: dict[str, CliResult]
    before: dict[str, int]
    after: dict[str, int]


def _counts(cli: CliHome) -> dict[str, int]:
    with sqlite3.connect(cli.home / "custody.db") as db:
        return {t: int(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in TABLES}


@pytest.fixture(scope="module")
def outcomes(cli: CliHome) -> Outcomes:
    x = cli.key("x")
    cli.json("keys", "generate", "--label", x, "--algorithm", "secp256k1")
    cli.json("wallets", "create", "hot", "--chain", "ethereum", "--key", x)
    (cli.home / "broken.yaml").write_text(BROKEN_POLICY)
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    (cli.home / "p256.pem").write_bytes(
        p256.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (cli.home / "garbage.pem").write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n")
    private = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (cli.home / "private.pem").write_bytes(private)
    before = _counts(cli)

    def args(case: str) -> list[str]:
        return [a.format(home=cli.home, x=x) for a in CASES[case]]

    as_json = {c: cli.run(*args(c), "--json") for c in CASES}
    human = {c: cli.run(*args(c)) for c in HUMAN_CASES}
    return Outcomes(cli.home, as_json, human, before, _counts(cli))


def _one_error_line(result: CliResult) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), result.stderr
    return lines[0]


@pytest.mark.parametrize("case", list(CASES))
def test_error_as_json_is_one_line_and_a_json_object(outcomes: Outcomes, case: str) -> None:
    result = outcomes.as_json[case]
    _one_error_line(result)
    body = json.loads(result.stdout)
    assert isinstance(body, dict)
    assert "error" in body
    assert body["error"]["message"]


@pytest.mark.parametrize("case", HUMAN_CASES)
def test_error_for_people_is_one_line(outcomes: Outcomes, case: str) -> None:
    result = outcomes.human[case]
    _one_error_line(result)
    assert result.stdout.strip() == ""


def test_messages_name_what_is_wrong(outcomes: Outcomes) -> None:
    def line(case: str) -> str:
        return _one_error_line(outcomes.as_json[case])

    assert "nochain" in line("unknown chain")
    assert "nokey" in line("unknown key")
    assert "hot" in line("duplicate wallet")
    assert "rsa" in line("bad algorithm")
    broken = line("broken policy")
    assert "broken.yaml" in broken
    assert "amount_lte" in broken
    assert "Ed25519" in line("P-256 client key")
    private = outcomes.as_json["private key as client key"]
    body = (outcomes.home / "private.pem").read_text().splitlines()[1]
    assert body not in private.stdout + private.stderr


def test_refusals_change_nothing(outcomes: Outcomes) -> None:
    assert outcomes.after == outcomes.before
