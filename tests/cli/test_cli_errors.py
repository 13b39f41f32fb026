"""Every refusal of the CLI: a non-zero exit, exactly one line on stderr starting `error:`,
with `--json` a JSON object with an "error" key on stdout, and nothing changed in the ledger.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.cli.conftest import CliHome

pytestmark = pytest.mark.slow

BROKEN_POLICY = """\
version: 1
rules:
  - {id: small, match: {type: withdrawal, amount_lte: 1.5}, action: allow}
"""


@pytest.fixture(scope="module")
def prepared(cli: CliHome) -> CliHome:
    cli.json("keys", "generate", "--label", "x", "--algorithm", "secp256k1")
    cli.json("wallets", "create", "hot", "--chain", "ethereum", "--key", "x")
    (cli.home / "broken.yaml").write_text(BROKEN_POLICY)
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    (cli.home / "p256.pem").write_bytes(
        p256.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (cli.home / "garbage.pem").write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n")
    return cli


CASES = {
    "unknown chain": ["wallets", "create", "w1", "--chain", "nochain", "--key", "x"],
    "unknown key": ["wallets", "create", "w2", "--chain", "ethereum", "--key", "nokey"],
    "duplicate wallet": ["wallets", "create", "hot", "--chain", "ethereum", "--key", "x"],
    "duplicate key": ["keys", "generate", "--label", "x", "--algorithm", "secp256k1"],
    "bad key label": ["keys", "generate", "--label", "Bad Label!", "--algorithm", "secp256k1"],
    "bad algorithm": ["keys", "generate", "--label", "fine", "--algorithm", "rsa"],
    "bad chain name": ["chains", "add", "Bad_Chain", "--evm-chain-id", "777"],
    "duplicate chain id": ["chains", "add", "mainnet-again", "--evm-chain-id", "1"],
    "broken policy": ["policy", "validate", "{home}/broken.yaml"],
    "missing policy file": ["policy", "validate", "{home}/no-such.yaml"],
    "P-256 client key": ["clients", "add", "desk-p256", "--public-key", "{home}/p256.pem"],
    "garbage client key": ["clients", "add", "desk-bad", "--public-key", "{home}/garbage.pem"],
    "missing option": ["wallets", "create", "w3", "--key", "x"],
}


def _args(cli: CliHome, case: str) -> list[str]:
    return [a.format(home=cli.home) for a in CASES[case]]


def _ledger_size(cli: CliHome) -> int:
    return int(cli.json("ledger", "verify")["size"])


@pytest.mark.parametrize("case", list(CASES))
def test_error_is_one_line_and_changes_nothing(prepared: CliHome, case: str) -> None:
    size = _ledger_size(prepared)
    result = prepared.run(*_args(prepared, case))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert _ledger_size(prepared) == size


@pytest.mark.parametrize("case", list(CASES))
def test_error_as_json(prepared: CliHome, case: str) -> None:
    result = prepared.run(*_args(prepared, case), "--json")
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    body = json.loads(result.stdout)
    assert isinstance(body, dict)
    assert "error" in body
    assert body["error"]["message"]


def test_messages_name_what_is_wrong(prepared: CliHome) -> None:
    def line(case: str) -> str:
        return prepared.run(*_args(prepared, case)).stderr.strip()

    assert "nochain" in line("unknown chain")
    assert "nokey" in line("unknown key")
    assert "hot" in line("duplicate wallet")
    broken = line("broken policy")
    assert "broken.yaml" in broken
    assert "amount_lte" in broken
    assert "Ed25519" in line("P-256 client key")


def test_refused_things_were_not_created(prepared: CliHome) -> None:
    for case in CASES:
        prepared.run(*_args(prepared, case))
    wallets = {w["name"] for w in prepared.json("wallets", "list")}
    assert wallets == {"hot"}
    keys = {k["label"] for k in prepared.json("keys", "list")}
    assert "fine" not in keys
    assert "Bad Label!" not in keys
    clients = {c["name"] for c in prepared.json("clients", "list")}
    assert not clients & {"desk-p256", "desk-bad"}
    chains = {c["name"] for c in prepared.json("chains", "list")}
    assert chains == {"ethereum", "sepolia"}
