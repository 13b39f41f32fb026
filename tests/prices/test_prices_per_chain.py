"""Reference prices belong to one asset on one chain, not to a symbol.

Issue 9 §2.3: USDC on ethereum (6 decimals) and a USDC on another chain (18 decimals) shared one
price keyed by "USDC", so a price meant for one valued the other: 10**12 base units of ethereum
USDC (a million dollars) read as a millionth of a dollar under the 18-decimal price.
"""

from __future__ import annotations

import pytest

from custody.catalog.assets import add_asset
from custody.catalog.chains import add_chain
from custody.chains import Amount
from custody.decisions.service import decide
from custody.policy import Allow, Deny, RequestFacts
from tests.support.api import DESTINATION
from tests.support.cli import CliResult, invoke, ok_json
from tests.support.installation import Installation

ETHEREUM_USDC = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
BSC_USDC = "0x8AC76a51cc950d9822D68b83fE1Ad97B32Cd580d"
MILLION_USDC_ON_ETHEREUM = 10**12  # 6 decimals
USD_CAP = """
version: 1
rules:
  - {id: deny-over-250k-usd, match: {amount_usd_gt: "250000.00"}, action: deny}
  - {id: allow-the-rest, match: {}, action: allow}
"""


@pytest.fixture
def two_usdc(fresh_installation: Installation) -> Installation:
    with fresh_installation.runtime.db.write() as session:
        add_chain(session, name="bsc", evm_chain_id=56, native_asset="BNB", actor="test")
        for chain, contract, decimals in (("ethereum", ETHEREUM_USDC, 6), ("bsc", BSC_USDC, 18)):
            add_asset(
                session,
                symbol="USDC",
                chain_name=chain,
                contract=contract,
                decimals=decimals,
                actor="test",
            )
    fresh_installation.apply_policy(USD_CAP)
    return fresh_installation


def custody(inst: Installation, *args: str) -> CliResult:
    return invoke(list(args), inst.env)


def usdc_on_ethereum(inst: Installation, amount: int) -> type:
    facts = RequestFacts(
        type="withdrawal",
        wallet="hot",
        chain="ethereum",
        asset="USDC",
        amount=Amount(amount),
        destination=DESTINATION,
        client="desk",
    )
    with inst.runtime.db.read() as session:
        _, decision = decide(session, facts, exclude_request=None)
    return type(decision)


def test_a_price_for_one_chain_never_values_the_same_symbol_on_another(
    two_usdc: Installation,
) -> None:
    priced = custody(
        two_usdc, "prices", "set", "USDC", "1.00", "--decimals", "18", "--chain", "bsc"
    )
    assert priced.returncode == 0, priced.stderr
    # Before: the bsc price (18 decimals) valued a million ethereum USDC at 0.000001 USD: allowed.
    assert usdc_on_ethereum(two_usdc, MILLION_USDC_ON_ETHEREUM) is Deny  # no price: fail closed

    ok_json(
        custody(
            two_usdc,
            "prices",
            "set",
            "USDC",
            "1.00",
            "--decimals",
            "6",
            "--chain",
            "ethereum",
            "--json",
        )
    )
    assert usdc_on_ethereum(two_usdc, MILLION_USDC_ON_ETHEREUM) is Deny  # over 250k USD
    assert usdc_on_ethereum(two_usdc, MILLION_USDC_ON_ETHEREUM // 10) is Allow


def test_an_ambiguous_symbol_is_refused_naming_the_choices(two_usdc: Installation) -> None:
    before = two_usdc.counts()
    refused = custody(two_usdc, "prices", "set", "USDC", "1.00", "--decimals", "18")
    # Before: accepted (18 is the decimals of one USDC), and under it a million ethereum USDC
    # was worth 0.000001 USD: allowed past the 250k cap.
    assert usdc_on_ethereum(two_usdc, MILLION_USDC_ON_ETHEREUM) is Deny
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"error: USDC names 2 assets (bsc: {BSC_USDC}, 18 decimals; ethereum: {ETHEREUM_USDC}, "
        "6 decimals): choose one with --chain"
    )
    assert two_usdc.counts() == before


def test_a_price_is_recorded_with_its_chain_and_contract(two_usdc: Installation) -> None:
    row = ok_json(
        custody(
            two_usdc,
            "prices",
            "set",
            "USDC",
            "1.00",
            "--decimals",
            "6",
            "--chain",
            "ethereum",
            "--json",
        )
    )
    assert (row["chain"], row["asset"], row["contract"]) == ("ethereum", "USDC", ETHEREUM_USDC)
    entry = two_usdc.ledger_entries("price.set")[-1]["data"]
    assert (entry["chain"], entry["asset"], entry["contract"]) == (
        "ethereum",
        "USDC",
        ETHEREUM_USDC,
    )
    listed = ok_json(custody(two_usdc, "prices", "list", "--json"))
    assert [(p["chain"], p["asset"]) for p in listed] == [("ethereum", "USDC")]
