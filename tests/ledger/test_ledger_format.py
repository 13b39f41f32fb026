"""Ledger entries as an auditor reads them, checked with code that did not write them:
RFC 8785 bytes (the `rfc8785` package), no floats, the required fields, RFC 3339 UTC times,
leaf hashes SHA-256(0x00 || entry) and the RFC 9162 root.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
import rfc8785
from sqlalchemy import text

from tests.ledger.rfc9162 import mth_from_leaf_hashes as mth
from tests.support.cli import invoke, ok_json
from tests.support.installation import Installation

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")


def _no_float(value: str) -> Any:
    raise AssertionError(f"a float in a ledger entry: {value}")


@pytest.fixture
def stored(installation: Installation) -> list[tuple[int, bytes, bytes, str, str]]:
    installation.wallet()
    installation.client()
    installation.allow_all_policy()
    with installation.runtime.db.engine.connect() as conn:
        return [
            (int(r[0]), bytes(r[1]), bytes(r[2]), str(r[3]), str(r[4]))
            for r in conn.execute(
                text(
                    'SELECT "index", entry, leaf_hash, kind, actor FROM ledger_entries '
                    'ORDER BY "index"'
                )
            )
        ]


def test_indices_are_contiguous_from_zero(stored: list[tuple[int, bytes, bytes, str, str]]) -> None:
    assert [row[0] for row in stored] == list(range(len(stored)))


def test_entries_are_canonical_without_floats(
    stored: list[tuple[int, bytes, bytes, str, str]],
) -> None:
    for index, entry, _, kind, actor in stored:
        body = json.loads(entry, parse_float=_no_float, parse_constant=_no_float)
        assert rfc8785.dumps(body) == entry, f"entry {index} is not RFC 8785 canonical"
        assert isinstance(body, dict)
        assert {"index", "time", "kind", "actor", "data"} <= body.keys()
        assert body["index"] == index
        assert type(body["index"]) is int
        assert body["kind"] == kind
        assert body["actor"] == actor
        assert isinstance(body["actor"], str)
        assert body["actor"]
        assert isinstance(body["data"], dict)
        assert RFC3339_UTC.match(body["time"]), body["time"]
        when = datetime.fromisoformat(body["time"].replace("Z", "+00:00"))
        assert when.tzinfo is not None
        assert when.utcoffset() == UTC.utcoffset(None)


def test_times_never_go_backwards(stored: list[tuple[int, bytes, bytes, str, str]]) -> None:
    times = [
        datetime.fromisoformat(json.loads(e)["time"].replace("Z", "+00:00"))
        for _, e, _, _, _ in stored
    ]
    assert times == sorted(times)


def test_leaf_hashes_are_sha256_of_0x00_and_the_entry(
    stored: list[tuple[int, bytes, bytes, str, str]],
) -> None:
    for index, entry, leaf, _, _ in stored:
        assert leaf == hashlib.sha256(b"\x00" + entry).digest(), f"leaf hash of entry {index}"


@pytest.mark.slow
def test_cli_verify_reports_the_independent_root(
    installation: Installation, stored: list[tuple[int, bytes, bytes, str, str]]
) -> None:
    root = mth([hashlib.sha256(b"\x00" + entry).digest() for _, entry, _, _, _ in stored])
    signed = invoke(["ledger", "checkpoint", "--json"], installation.env)
    assert ok_json(signed)["tree_size"] == len(stored)
    report = ok_json(invoke(["ledger", "verify", "--json"], installation.env))
    assert report["ok"] is True
    assert report["size"] == len(stored)
    assert bytes.fromhex(report["root"]) == root


def test_actions_are_recorded_with_their_data(installation: Installation) -> None:
    wallet = installation.wallet()
    client = installation.client()
    digest = installation.allow_all_policy()
    keys = [
        e
        for e in installation.ledger_entries("key.generated")
        if e["data"]["label"] == wallet.key_label
    ]
    assert len(keys) == 1
    assert keys[0]["data"]["algorithm"] == "secp256k1"
    wallets = [
        e for e in installation.ledger_entries("wallet.created") if e["data"]["name"] == wallet.name
    ]
    assert len(wallets) == 1
    assert wallets[0]["data"]["address"] == wallet.address
    assert wallets[0]["index"] > keys[0]["index"]
    clients = [
        e for e in installation.ledger_entries("client.added") if e["data"]["id"] == client.id
    ]
    assert len(clients) == 1
    policies = installation.ledger_entries("policy.applied")
    assert digest in json.dumps(policies[-1]["data"])
