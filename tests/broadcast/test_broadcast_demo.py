"""`make demo` with anvil: `custody demo seed --node URL` adds a connected local chain and a
funded wallet on it, and seeding again changes nothing. In subprocesses, with the installation's
own development token: the demo's key label would clash on the tests' shared token."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.e2e.process import clean_env, ok_json, run_custody
from tests.support.anvil import Anvil


@pytest.mark.slow
def test_demo_seed_connects_a_local_chain_and_funds_its_wallet(
    tmp_path: Path, anvil: Anvil
) -> None:
    env = clean_env(tmp_path / "home")
    assert run_custody(["init"], env).returncode == 0
    first = ok_json(run_custody(["demo", "seed", "--node", anvil.url, "--json"], env))
    assert first["local_wallet"] == "local-eth"
    chains = {c["name"]: c for c in ok_json(run_custody(["chains", "list", "--json"], env))}
    assert chains["local"]["connected"] is True
    assert chains["local"]["evm_chain_id"] == 31337
    balance = ok_json(run_custody(["wallets", "balance", "local-eth", "--json"], env))
    funds = anvil.balance(balance["address"])
    assert int(balance["balance"]) == funds
    # funded with 100 ETH; it paid the gas of deploying the demo's Safe (and its contracts)
    assert 99 * 10**18 < funds < 100 * 10**18
    assert balance["address"] == first["address"]  # the same key on both chains
    # a 2-of-3 Safe, deployed (code at its address) and funded, its executor the local wallet
    assert first["local_safe"] == "local-safe"
    listed = {w["name"]: w for w in ok_json(run_custody(["wallets", "list", "--json"], env))}
    safe = listed["local-safe"]
    assert (safe["threshold"], safe["executor"], safe["deployed"]) == (2, "local-eth", True)
    assert anvil.rpc("eth_getCode", safe["address"], "latest") != "0x"
    assert anvil.balance(safe["address"]) == 10 * 10**18

    size = _ledger_size(tmp_path / "home")
    second = ok_json(run_custody(["demo", "seed", "--node", anvil.url, "--json"], env))
    assert second == first
    assert _ledger_size(tmp_path / "home") == size
    assert anvil.balance(balance["address"]) == funds


def _ledger_size(home: Path) -> int:
    with sqlite3.connect(home / "custody.db") as db:
        return int(db.execute("SELECT COUNT(*) FROM ledger_entries").fetchone()[0])
