"""Keys generated in the HSM and wallets derived from them, through the CLI; the address is
checked against one derived independently (eth_keys / eth_utils) from the listed public key.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
from eth_keys import keys as eth_keys
from eth_utils import is_checksum_address, keccak, to_checksum_address

from custody.hsm import DevToken, Pkcs11Token, read_pin_file
from tests.cli.conftest import CliHome

pytestmark = pytest.mark.slow


def test_generate_key_and_create_wallet_prints_its_eip55_address(cli: CliHome) -> None:
    x = cli.key("x")
    generated = cli.json("keys", "generate", "--label", x, "--algorithm", "secp256k1")
    assert generated["label"] == x
    assert generated["algorithm"] == "secp256k1"

    human = cli.run("wallets", "create", "hot", "--chain", "ethereum", "--key", x)
    assert human.returncode == 0, human.stderr
    printed = [w for w in human.stdout.split() if w.startswith("0x")]
    assert len(printed) == 1, human.stdout
    address = printed[0]
    assert is_checksum_address(address)
    assert address != address.lower()

    listed = {k["label"]: k for k in cli.json("keys", "list")}
    public = bytes.fromhex(listed[x]["public_key"])
    assert len(public) == 65
    assert public[0] == 4
    assert public.hex() == generated["public_key"]
    via_eth_keys = eth_keys.PublicKey(public[1:]).to_checksum_address()
    via_keccak = to_checksum_address(keccak(public[1:])[-20:])
    assert address == via_eth_keys == via_keccak

    # the same key on another chain: another wallet, the same address
    assert cli.json("chains", "add", "holesky-test", "--evm-chain-id", "17000") == {
        "name": "holesky-test",
        "evm_chain_id": 17000,
        "native_asset": "ETH",
        "native_decimals": 18,
    }
    other = cli.json("wallets", "create", "hot-holesky", "--chain", "holesky-test", "--key", x)
    assert other["address"] == address


def test_ed25519_key_cannot_back_an_evm_wallet(cli: CliHome) -> None:
    edkey = cli.key("edkey")
    generated = cli.json("keys", "generate", "--label", edkey, "--algorithm", "ed25519")
    assert generated["algorithm"] == "ed25519"
    assert len(bytes.fromhex(generated["public_key"])) == 32
    refused = cli.run("wallets", "create", "ed-wallet", "--chain", "ethereum", "--key", edkey)
    assert refused.returncode != 0
    assert refused.stderr.startswith("error:")
    with sqlite3.connect(cli.home / "custody.db") as db:
        assert db.execute("SELECT COUNT(*) FROM wallets WHERE name = 'ed-wallet'").fetchone() == (
            0,
        )


def test_list_commands_print_json(cli: CliHome) -> None:
    outputs = {}
    for command in ("keys", "chains", "wallets", "clients"):
        result = cli.run(command, "list", "--json")
        assert result.returncode == 0, result.stderr
        outputs[command] = json.loads(result.stdout)
        assert isinstance(outputs[command], list), command
    versions = cli.run("policy", "versions", "--json")
    assert versions.returncode == 0, versions.stderr
    assert json.loads(versions.stdout) == []

    chains = {c["name"]: c["evm_chain_id"] for c in outputs["chains"]}
    assert chains["ethereum"] == 1
    assert chains["sepolia"] == 11155111
    assert chains["holesky-test"] == 17000
    wallets = {w["name"]: w for w in outputs["wallets"]}
    assert wallets["hot"]["chain"] == "ethereum"
    assert wallets["hot"]["key"] == cli.key("x")
    assert wallets["hot-holesky"]["chain"] == "holesky-test"
    assert "ed-wallet" not in wallets
    keys = {k["label"]: k["algorithm"] for k in outputs["keys"]}
    assert keys[cli.key("x")] == "secp256k1"
    assert keys[cli.key("edkey")] == "ed25519"
    # init registers the approver app's own client (its key in the HSM), and nothing else
    assert [(c["name"], c["role"]) for c in outputs["clients"]] == [("approver-app", "internal")]


def test_wallet_keys_are_backup_able_unless_made_without_a_backup(
    cli: CliHome, hsm_dev_token: DevToken
) -> None:
    """DESIGN invariant 7: sensitive, and either never extractable or extractable only wrapped
    under a trusted key. `keys list` says which, and what to do about a key no backup can hold."""
    able, never, service = cli.key("able"), cli.key("never"), cli.key("service")
    made = {
        able: cli.json("keys", "generate", "--label", able, "--algorithm", "secp256k1"),
        never: cli.json(
            "keys", "generate", "--label", never, "--algorithm", "secp256k1", "--no-backup"
        ),
        service: cli.json("keys", "generate", "--label", service, "--algorithm", "ed25519"),
    }
    assert {label: made[label]["backup"] for label in made} == {
        able: "trusted-wrap",
        never: "none",
        service: "none",
    }
    listed = {k["label"]: k for k in cli.json("keys", "list")}
    assert (
        listed[able]["backup_status"] == "backup-able, in no backup yet (custody ceremony backup)"
    )
    assert listed[able]["last_backup"] is None
    assert listed[never]["backup_status"] == (
        "no backup possible (never extractable): move its funds to a wallet on a new key"
    )
    assert listed[service]["backup_status"].startswith("no backup possible (Ed25519")
    human = cli.run("keys", "list")
    assert "no backup possible (never extractable): move its funds to a wallet on a new key" in (
        " ".join(human.stdout.split())
    )

    pin = read_pin_file(hsm_dev_token.pin_file)
    with Pkcs11Token(hsm_dev_token.module_path, hsm_dev_token.label, pin) as token:
        flags = {label: token.private_key_attributes(label) for label in made}
        for label in made:
            assert token.private_key_value_readable(label) is False
    extractable = {
        label: (f["CKA_SENSITIVE"], f["CKA_EXTRACTABLE"], f["CKA_WRAP_WITH_TRUSTED"])
        for label, f in flags.items()
    }
    assert extractable == {
        able: (True, True, True),
        never: (True, False, False),
        service: (True, False, False),
    }
    with sqlite3.connect(cli.home / "custody.db") as db:
        entries = [
            json.loads(row[0])
            for row in db.execute("SELECT entry FROM ledger_entries WHERE kind = 'key.generated'")
        ]
    recorded = {
        e["data"]["label"]: e["data"]["backup"] for e in entries if e["data"]["label"] in made
    }
    assert recorded == {able: "trusted-wrap", never: "none", service: "none"}
