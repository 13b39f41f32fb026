"""Assets, venues and reference prices through the `custody` command: add, list, refuse, ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import CliHome
from tests.support.cli import CliResult

pytestmark = pytest.mark.slow

USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
COW = "0x9008D19f58AAbD9eD0D60971565AA8510560ab41"
ORDER = (
    "Order:sell_token=sellToken:sell_amount=sellAmount+feeAmount:buy_token=buyToken"
    ":buy_amount=buyAmount:receiver=receiver:zero_receiver=wallet"
)
FILL = "Fill:sell_token=give:sell_amount=gives:buy_token=get:buy_amount=gets:receiver=to"


def refused(result: CliResult, words: str) -> None:
    """Exit 1 and exactly one `error:` line naming the problem."""
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    assert words in lines[0], lines[0]


def kinds(cli: CliHome, tmp_path: Path) -> list[dict[str, object]]:
    cli.json("ledger", "export", str(tmp_path / "export"))
    text = (tmp_path / "export" / "entries.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_assets_prices_and_venues_are_added_listed_and_ledgered(
    cli: CliHome, tmp_path: Path
) -> None:
    asset = cli.json(
        "assets", "add", "USDC", "--chain", "ethereum", "--contract", USDC, "--decimals", "6"
    )
    assert asset == {
        "symbol": "USDC",
        "chain": "ethereum",
        "contract": USDC,
        "decimals": 6,
        "standard": "erc20",
    }
    # lower-case input carries no checksum; it is stored EIP-55
    lowered = cli.json(
        "assets",
        "add",
        "WETH",
        "--chain",
        "ethereum",
        "--contract",
        "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2",
        "--decimals",
        "18",
    )
    assert lowered["contract"] == "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
    symbols = [a["symbol"] for a in cli.json("assets", "list")]
    assert {"USDC", "WETH"} <= set(symbols)
    assert symbols == sorted(symbols)

    # USDC names one asset here (a token on ethereum): no --chain needed.
    price = cli.json("prices", "set", "USDC", "1", "--decimals", "6")
    assert (price["asset"], price["usd_per_unit"], price["decimals"]) == ("USDC", "1.00", 6)
    assert (price["chain"], price["contract"]) == ("ethereum", USDC)
    cli.json("prices", "set", "ETH", "3000.25", "--decimals", "18", "--chain", "ethereum")
    again = cli.json("prices", "set", "ETH", "3100", "--decimals", "18", "--chain", "ethereum")
    assert again["usd_per_unit"] == "3100.00"
    assert again["contract"] is None
    listed = {(p["chain"], p["asset"]): p["usd_per_unit"] for p in cli.json("prices", "list")}
    assert listed == {("ethereum", "ETH"): "3100.00", ("ethereum", "USDC"): "1.00"}

    venue = cli.json(
        "venues",
        "add",
        "cowswap",
        "--chain",
        "ethereum",
        "--verifying-contract",
        COW,
        "--primary-type",
        ORDER,
        "--primary-type",
        FILL,
    )
    assert venue["primary_types"] == {
        "Order": {
            "sell_token": "sellToken",
            "sell_amount": "sellAmount+feeAmount",
            "buy_token": "buyToken",
            "buy_amount": "buyAmount",
            "receiver": "receiver",
            "zero_receiver": "wallet",
        },
        "Fill": {
            "sell_token": "give",
            "sell_amount": "gives",
            "buy_token": "get",
            "buy_amount": "gets",
            "receiver": "to",
        },
    }
    assert venue in cli.json("venues", "list")
    human = cli.run("venues", "list")
    assert human.returncode == 0
    assert "cowswap" in human.stdout

    entries = kinds(cli, tmp_path)
    assert [
        e["kind"] for e in entries if e["kind"] in ("asset.added", "price.set", "venue.added")
    ] == ["asset.added", "asset.added", "price.set", "price.set", "price.set", "venue.added"]
    added = next(e for e in entries if e["kind"] == "venue.added")
    assert added["data"]["verifying_contract"] == COW


def test_venue_types_are_declared_anew_with_set(cli: CliHome, tmp_path: Path) -> None:
    cli.json(
        "venues",
        "add",
        "redeclared",
        "--chain",
        "ethereum",
        "--verifying-contract",
        COW,
        "--primary-type",
        FILL,
    )
    changed = cli.json("venues", "set", "redeclared", "--primary-type", ORDER)
    assert list(changed["primary_types"]) == ["Order"]
    assert changed in cli.json("venues", "list")
    entry = next(e for e in kinds(cli, tmp_path) if e["kind"] == "venue.types_set")
    assert entry["data"] == changed
    refused(cli.run("venues", "set", "nowhere", "--primary-type", ORDER), "unknown venue")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(["usdt"], "upper-case", id="lower-case-symbol"),
        pytest.param(["USDT", "--decimals", "37"], "between 0 and 36", id="decimals-too-many"),
        pytest.param(["USDT", "--decimals", "-1"], "between 0 and 36", id="decimals-negative"),
        pytest.param(
            ["USDT", "--contract", USDC.replace("A0b8", "a0B8")], "checksum", id="bad-checksum"
        ),
        pytest.param(["USDT", "--contract", "0x1234"], "40 hex digits", id="short-contract"),
        pytest.param(["USDT", "--chain", "nochain"], "unknown chain", id="unknown-chain"),
        pytest.param(["ETH"], "native asset", id="native-symbol"),
    ],
)
def test_bad_asset_is_refused_with_one_line(cli: CliHome, args: list[str], words: str) -> None:
    defaults = {
        "--chain": "ethereum",
        "--contract": "0xdAC17F958D2ee523a2206206994597C13D831ec7",
        "--decimals": "6",
    }
    given = dict(zip(args[1::2], args[2::2], strict=True))
    options = [item for key, value in (defaults | given).items() for item in (key, value)]
    refused(cli.run("assets", "add", args[0], *options), words)
    assert "USDT" not in {a["symbol"] for a in cli.json("assets", "list")}


def test_duplicate_asset_and_contract_are_refused(cli: CliHome) -> None:
    cli.json(
        "assets",
        "add",
        "DAI",
        "--chain",
        "ethereum",
        "--contract",
        "0x6B175474E89094C44Da98b954EedeAC495271d0F",
        "--decimals",
        "18",
    )
    refused(
        cli.run(
            "assets",
            "add",
            "DAI",
            "--chain",
            "ethereum",
            "--contract",
            "0x4Fabb145d64652a948d72533023f6E7A623C7C53",
            "--decimals",
            "18",
        ),
        "already registered",
    )
    refused(
        cli.run(
            "assets",
            "add",
            "DAI2",
            "--chain",
            "ethereum",
            "--contract",
            "0x6B175474E89094C44Da98b954EedeAC495271d0F",
            "--decimals",
            "18",
        ),
        "already registered",
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(["ETH", "abc", "--decimals", "18"], "USD amount", id="not-a-price"),
        pytest.param(["ETH", "1e3", "--decimals", "18"], "USD amount", id="exponent"),
        pytest.param(["NOPE", "1.00", "--decimals", "18"], "unknown asset", id="unknown-asset"),
        pytest.param(
            ["ETH", "1.00", "--decimals", "6", "--chain", "ethereum"], "not 6", id="wrong-decimals"
        ),
        pytest.param(["eth", "1.00", "--decimals", "18"], "upper-case", id="bad-symbol"),
        pytest.param(
            ["ETH", "3000", "--decimals", "18"],
            "ETH names 2 assets (ethereum: native, 18 decimals; sepolia: native, 18 decimals): "
            "choose one with --chain",
            id="ambiguous-symbol",
        ),
        pytest.param(
            ["ETH", "3000", "--decimals", "18", "--chain", "nochain"], "unknown chain", id="chain"
        ),
    ],
)
def test_bad_price_is_refused_with_one_line(cli: CliHome, args: list[str], words: str) -> None:
    refused(cli.run("prices", "set", *args), words)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        pytest.param(
            "Order:notional_field=sellAmount:asset=USDC",
            "notional_field is no longer accepted",
            id="first-version-form",
        ),
        pytest.param(FILL.removesuffix(":receiver=to"), "lacks receiver", id="no-receiver"),
        pytest.param(FILL + ":extra=1", "must read", id="extra-option"),
        pytest.param(FILL + ":zero_receiver=anyone", "can only be wallet", id="bad-zero-receiver"),
        pytest.param(FILL.replace("get:", "give:"), "one field for two terms", id="same-field"),
        pytest.param(FILL.replace("=to", "=1to"), "is not a field name", id="bad-field-name"),
        pytest.param("1" + FILL, "not an EIP-712 type name", id="bad-type-name"),
    ],
)
def test_bad_venue_is_refused_with_one_line(cli: CliHome, spec: str, words: str) -> None:
    refused(
        cli.run(
            "venues",
            "add",
            "badvenue",
            "--chain",
            "ethereum",
            "--verifying-contract",
            COW,
            "--primary-type",
            spec,
        ),
        words,
    )
    assert "badvenue" not in {v["name"] for v in cli.json("venues", "list")}


def test_duplicate_venue_is_refused(cli: CliHome) -> None:
    args = [
        "--chain",
        "ethereum",
        "--verifying-contract",
        COW,
        "--primary-type",
        FILL,
    ]
    cli.json("venues", "add", "twice", *args)
    refused(cli.run("venues", "add", "twice", *args), "already exists")
