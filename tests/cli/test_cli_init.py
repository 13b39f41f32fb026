"""`custody init` on a fresh machine: no HSM settings, so it creates the development token under
CUSTODY_HOME/hsm; idempotent; PINs stay in the 0600 pins.json and nowhere else.
"""

from __future__ import annotations

import json
import sqlite3
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.process import clean_env, ok_json, run_custody
from tests.support.cli import invoke

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Processes, not `invoke`: this installation's development token is not the session's."""
    home = tmp_path_factory.mktemp("cli-init") / "home"
    env = clean_env(home)
    first = run_custody(["init", "--json"], env)
    second = run_custody(["init", "--json"], env)
    human = run_custody(["init"], env)
    # Two readers after the three inits: they may run side by side.
    with ThreadPoolExecutor(max_workers=2) as pool:
        keys = pool.submit(run_custody, ["keys", "list", "--json"], env)
        verify = pool.submit(run_custody, ["ledger", "verify", "--json"], env)
        runs = [first, second, human, keys.result(), verify.result()]
    again = run_custody(["ledger", "checkpoint", "--json"], env)
    return {"home": home, "env": env, "runs": [*runs, again]}


def test_first_init_creates_everything(fresh: dict[str, Any]) -> None:
    report = ok_json(fresh["runs"][0])
    home: Path = fresh["home"]
    assert report["created_config"] is True
    assert report["created_dev_token"] is True
    assert report["created_ledger_key"] is True
    assert report["created_webhook_key"] is True
    assert sorted(report["added_chains"]) == [
        "bitcoin",
        "ethereum",
        "regtest",
        "sepolia",
        "signet",
        "testnet",
    ]
    assert Path(report["home"]) == home.resolve()
    assert (home / "custody.toml").is_file()
    assert (home / "custody.db").is_file()
    assert (home / "hsm" / "softhsm2.conf").is_file()
    assert (home / "hsm" / "pins.json").is_file()
    readme = list((home / "hsm").glob("README*"))
    assert readme
    assert "DEVELOPMENT" in readme[0].read_text()


def test_second_init_creates_nothing(fresh: dict[str, Any]) -> None:
    report = ok_json(fresh["runs"][1])
    assert report["created_config"] is False
    assert report["created_dev_token"] is False
    assert report["created_ledger_key"] is False
    assert report["created_webhook_key"] is False
    assert report["created_root_key"] is False
    assert report["configuration_seal"] == ok_json(fresh["runs"][0])["configuration_seal"]
    assert report["added_chains"] == []
    human = fresh["runs"][2]
    assert human.returncode == 0, human.stderr
    assert "custody home" in human.stdout


def test_init_keeps_one_ledger_key_and_a_valid_ledger(fresh: dict[str, Any]) -> None:
    keys = ok_json(fresh["runs"][3])
    assert isinstance(keys, list)
    labels = [k["label"] for k in keys]
    assert len(labels) == len(set(labels))
    assert "ledger" in labels
    assert {k["algorithm"] for k in keys if k["label"] == "ledger"} == {"ed25519"}
    # init signed what it recorded, so the ledger verifies before any `serve` has run ...
    report = ok_json(fresh["runs"][4])
    assert report["ok"] is True
    # the six built-in chains (two EVM, four Bitcoin), each key and the approver app's client,
    # recorded once although init ran three times, and one configuration seal for each of the
    # six steps that changed the configuration (root key, chains, ledger key, app key, app
    # client, webhook key)
    assert {"installation-root", "ledger", "approver-app", "webhooks"} <= set(labels)
    assert report["size"] == 6 + len(keys) + 1 + 6
    assert report["signed_size"] == report["size"]
    assert ok_json(fresh["runs"][0])["checkpoint_size"] == report["size"]
    assert ok_json(fresh["runs"][1])["checkpoint_size"] is None  # nothing new to sign
    # ... and nothing is left to sign
    assert ok_json(fresh["runs"][5])["new"] is False


def test_pins_file_is_private(fresh: dict[str, Any]) -> None:
    pins = fresh["home"] / "hsm" / "pins.json"
    assert stat.S_IMODE(pins.stat().st_mode) == 0o600
    assert stat.S_IMODE((fresh["home"] / "hsm").stat().st_mode) & 0o077 == 0


def _pins(home: Path) -> list[str]:
    data = json.loads((home / "hsm" / "pins.json").read_text())
    found = [str(v) for k, v in data.items() if "pin" in k]
    assert len(found) >= 2
    assert all(len(p) >= 8 for p in found)
    return found


def test_pins_appear_in_no_output(fresh: dict[str, Any]) -> None:
    pins = _pins(fresh["home"])
    for result in fresh["runs"]:
        for pin in pins:
            assert pin not in result.stdout
            assert pin not in result.stderr


def test_pins_appear_nowhere_in_the_database_or_ledger(fresh: dict[str, Any]) -> None:
    home: Path = fresh["home"]
    pins = [p.encode() for p in _pins(home)]
    stored = [p for p in home.iterdir() if p.is_file()]
    assert home / "custody.db" in stored
    for path in stored:
        data = path.read_bytes()
        for pin in pins:
            assert pin not in data, f"a PIN is in {path.name}"
    with sqlite3.connect(home / "custody.db") as db:
        entries = [bytes(row[0]) for row in db.execute("SELECT entry FROM ledger_entries")]
    assert entries
    for entry in entries:
        for pin in pins:
            assert pin not in entry


def test_production_refuses_to_init_without_an_hsm(tmp_path: Path) -> None:
    # Refused before any HSM is touched, so it can run in this process (the script prints the
    # same: tests/cli/test_cli_entry_point.py).
    home = tmp_path / "prod"
    result = invoke(["init"], {"CUSTODY_HOME": str(home), "CUSTODY_ENVIRONMENT": "production"})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    assert "CUSTODY_HSM_MODULE" in lines[0]
    assert not (home / "hsm").exists()
    assert not (home / "custody.db").exists()


def test_production_refusal_as_json(tmp_path: Path) -> None:
    env = {"CUSTODY_HOME": str(tmp_path / "prod"), "CUSTODY_ENVIRONMENT": "production"}
    result = invoke(["init", "--json"], env)
    assert result.returncode != 0
    assert "CUSTODY_HSM_MODULE" in json.loads(result.stdout)["error"]["message"]
    assert len(result.stderr.strip().splitlines()) == 1
