"""Bitcoin wallets through the CLI: `--key` (P2WPKH) and `--owners --threshold` (P2WSH
sortedmulti); the listed descriptor derives the listed address (checked with embit)."""

from __future__ import annotations

import pytest
from embit.descriptor import Descriptor
from embit.descriptor.checksum import add_checksum
from embit.networks import NETWORKS

from tests.cli.conftest import CliHome

pytestmark = pytest.mark.slow


def _keys(cli: CliHome, *names: str) -> list[str]:
    labels = [cli.key(name) for name in names]
    for label in labels:
        cli.json("keys", "generate", "--label", label, "--algorithm", "secp256k1")
    return labels


def test_p2wpkh_and_two_of_three_wallets_list_their_descriptors(cli: CliHome) -> None:
    single, a, b, c = _keys(cli, "btc-single", "btc-a", "btc-b", "btc-c")
    made = cli.json("wallets", "create", "btc-hot", "--chain", "regtest", "--key", single)
    assert made["address"].startswith("bcrt1q")
    owners = ",".join((a, b, c))
    vault = cli.json(
        "wallets", "create", "btc-vault", "--chain", "regtest", "--owners", owners,
        "--threshold", "2",
    )  # fmt: skip
    assert vault["descriptor"].startswith("wsh(sortedmulti(2,")
    listed = {w["name"]: w for w in cli.json("wallets", "list")}
    for name in ("btc-hot", "btc-vault"):
        descriptor = listed[name]["descriptor"]
        body, _, checksum = descriptor.partition("#")
        assert add_checksum(body) == descriptor
        assert len(checksum) == 8
        assert Descriptor.from_string(body).address(NETWORKS["regtest"]) == listed[name]["address"]
    assert listed["btc-vault"]["address"] == vault["address"]
    assert "descriptor" not in listed.get("hot", {})  # EVM wallets have none
    human = cli.run("wallets", "list")
    assert human.returncode == 0
    assert "sortedmulti" in human.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--owners", "x,y"], "--owners with --threshold"),
        (["--key", "k", "--owners", "x", "--threshold", "1"], "either --key"),
        (["--owners", "{a},{a}", "--threshold", "1"], "named once"),
        (["--owners", "{a},{b}", "--threshold", "3"], "threshold must be between 1 and 2"),
    ],
)
def test_bad_bitcoin_wallets_are_refused_in_one_line(
    cli: CliHome, args: list[str], words: str
) -> None:
    a, b = cli.key("bad-a"), cli.key("bad-b")
    if not any(w["label"] == a for w in cli.json("keys", "list")):
        _keys(cli, "bad-a", "bad-b")
    before = cli.json("wallets", "list")
    args = [arg.format(a=a, b=b) for arg in args]
    refused = cli.run("wallets", "create", "btc-bad", "--chain", "regtest", *args)
    assert refused.returncode != 0
    assert words in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert cli.json("wallets", "list") == before


def test_owners_on_an_evm_chain_are_refused(cli: CliHome) -> None:
    (a,) = _keys(cli, "evm-owner")
    refused = cli.run(
        "wallets", "create", "evm-multi", "--chain", "ethereum", "--owners", a, "--threshold", "1"
    )
    assert refused.returncode != 0
    assert "not a Bitcoin network" in refused.stderr
