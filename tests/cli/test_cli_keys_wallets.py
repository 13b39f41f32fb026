"""Keys generated in the HSM and wallets derived from them, through the CLI; the address is
checked against one derived independently (eth_keys / eth_utils) from the listed public key.
"""

from __future__ import annotations

import json

import pytest
from eth_keys import keys as eth_keys
from eth_utils import is_checksum_address, keccak, to_checksum_address

from tests.cli.conftest import CliHome

pytestmark = pytest.mark.slow


def test_generate_key_and_create_wallet_prints_its_eip55_address(cli: CliHome) -> None:
    generated = cli.json("keys", "generate", "--label", "x", "--algorithm", "secp256k1")
    assert generated["label"] == "x"
    assert generated["algorithm"] == "secp256k1"

    human = cli.run("wallets", "create", "hot", "--chain", "ethereum", "--key", "x")
    assert human.returncode == 0, human.stderr
    printed = [w for w in human.stdout.split() if w.startswith("0x")]
    assert len(printed) == 1, human.stdout
    address = printed[0]
    assert is_checksum_address(address)
    assert address != address.lower()

    listed = {k["label"]: k for k in cli.json("keys", "list")}
    public = bytes.fromhex(listed["x"]["public_key"])
    assert len(public) == 65
    assert public[0] == 4
    assert public.hex() == generated["public_key"]
    via_eth_keys = eth_keys.PublicKey(public[1:]).to_checksum_address()
    via_keccak = to_checksum_address(keccak(public[1:])[-20:])
    assert address == via_eth_keys == via_keccak

    wallets = {w["name"]: w for w in cli.json("wallets", "list")}
    assert wallets["hot"] == {"name": "hot", "chain": "ethereum", "key": "x", "address": address}


def test_ed25519_key_is_listed_and_cannot_back_an_evm_wallet(cli: CliHome) -> None:
    generated = cli.json("keys", "generate", "--label", "edkey", "--algorithm", "ed25519")
    assert generated["algorithm"] == "ed25519"
    assert len(bytes.fromhex(generated["public_key"])) == 32
    refused = cli.run("wallets", "create", "ed-wallet", "--chain", "ethereum", "--key", "edkey")
    assert refused.returncode != 0
    assert refused.stderr.startswith("error:")
    assert "ed-wallet" not in {w["name"] for w in cli.json("wallets", "list")}


def test_list_commands_print_json(cli: CliHome) -> None:
    for command in (["keys", "list"], ["chains", "list"], ["wallets", "list"],
                    ["clients", "list"], ["policy", "versions"]):
        result = cli.run(*command, "--json")
        assert result.returncode == 0, result.stderr
        assert isinstance(json.loads(result.stdout), list), command
    chains = {c["name"]: c["evm_chain_id"] for c in cli.json("chains", "list")}
    assert chains["ethereum"] == 1
    assert chains["sepolia"] == 11155111


def test_chains_add_then_wallet_on_it(cli: CliHome) -> None:
    added = cli.json("chains", "add", "holesky-test", "--evm-chain-id", "17000")
    assert added["name"] == "holesky-test"
    assert added["evm_chain_id"] == 17000
    cli.json("keys", "generate", "--label", "hk", "--algorithm", "secp256k1")
    wallet = cli.json("wallets", "create", "hw", "--chain", "holesky-test", "--key", "hk")
    assert wallet["chain"] == "holesky-test"
    assert is_checksum_address(wallet["address"])


def test_ledger_records_the_keys_and_wallets(cli: CliHome) -> None:
    report = cli.json("ledger", "verify")
    assert report["ok"] is True
    assert report["size"] >= 3
