"""Clients, policies, the demo seed and ledger verification through the CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.cli.conftest import CliHome

pytestmark = pytest.mark.slow

POLICY = """\
version: 1
rules:
  - {id: small, match: {type: withdrawal, assets: [ETH], amount_lte: "1000"}, action: allow}
"""


def _ed25519_pem(path: Path) -> Path:
    key = Ed25519PrivateKey.generate().public_key()
    path.write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def _count(cli: CliHome, query: str) -> int:
    with sqlite3.connect(cli.home / "custody.db") as db:
        return int(db.execute(query).fetchone()[0])


def test_clients_add_prints_the_id_that_clients_list_shows(cli: CliHome) -> None:
    pem = _ed25519_pem(cli.home / "desk.pem")
    added = cli.json("clients", "add", "desk-one", "--public-key", str(pem))
    assert added["name"] == "desk-one"
    assert added["id"]
    human = cli.run("clients", "add", "desk-two", "--public-key", str(pem))
    assert human.returncode == 0, human.stderr

    listed = {c["name"]: c for c in cli.json("clients", "list")}
    assert listed["desk-one"]["id"] == added["id"]
    assert listed["desk-one"]["disabled"] is False
    assert listed["desk-two"]["id"] in human.stdout


def test_policy_validate_apply_and_versions(cli: CliHome) -> None:
    path = cli.home / "small.yaml"
    path.write_text(POLICY)
    validated = cli.json("policy", "validate", str(path))
    assert isinstance(validated, list)
    assert validated[0]["rules"] == 1
    digest = validated[0]["digest"]

    applied = cli.json("policy", "apply", str(path))
    assert applied["digest"] == digest
    assert applied["changed"] is True
    again = cli.json("policy", "apply", str(path))
    assert again["changed"] is False

    versions = cli.json("policy", "versions")
    assert [v["digest"] for v in versions] == [digest]


def test_demo_seed_is_idempotent(cli: CliHome) -> None:
    first = cli.json("demo", "seed")
    tables = ("ledger_entries", "wallets", "clients", "keys", "policy_versions")
    counts = {t: _count(cli, f"SELECT COUNT(*) FROM {t}") for t in tables}
    second = cli.json("demo", "seed")
    assert first == second
    assert {t: _count(cli, f"SELECT COUNT(*) FROM {t}") for t in tables} == counts
    assert _count(cli, f"SELECT COUNT(*) FROM wallets WHERE address = '{first['address']}'") == 1
    assert _count(cli, f"SELECT COUNT(*) FROM clients WHERE id = '{first['client_id']}'") == 1
    private = Path(first["client_private_key"])
    assert private.is_file()
    assert private.stat().st_mode & 0o077 == 0


def test_ledger_verify(cli: CliHome) -> None:
    cli.json("ledger", "checkpoint")  # no `serve` signs one here
    result = cli.run("ledger", "verify", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["size"] == _count(cli, "SELECT COUNT(*) FROM ledger_entries")
    assert len(bytes.fromhex(report["root"])) == 32
    human = cli.run("ledger", "verify")
    assert human.returncode == 0, human.stderr
    assert "ok" in human.stdout
