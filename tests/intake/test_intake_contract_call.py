"""Contract calls through the ASGI app: decoded, judged (token transfers as withdrawals), signed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_tester import EthereumTester, PyEVMBackend
from hexbytes import HexBytes

from custody.signing.worker import SignerWorker
from tests.intake.intake_support import (
    approve,
    contract_call,
    random_address,
    register_token,
    safe_exec,
    transfer,
)
from tests.intake.tiny_token import init_code
from tests.support.api import Api
from tests.support.installation import Installation, WalletInfo

Policy = Callable[[str], str]
CALLS_ALLOWED = "version: 1\nrules:\n  - {id: calls, match: {type: contract_call}, action: allow}\n"


def created(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    response = api.create(body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_erc20_transfer_is_judged_as_a_withdrawal_against_the_allowlist(
    api: Api, wallet: WalletInfo, signer: SignerWorker, installation: Installation, policy: Policy
) -> None:
    symbol, token = register_token(installation)
    listed, unlisted = random_address(), random_address()
    policy(
        "version: 1\n"
        f"allowlists:\n  desks:\n    - {{chain: ethereum, address: '{listed}', label: desk}}\n"
        "rules:\n"
        "  - {id: deny-unlisted, match: {type: withdrawal, destination_not_in: desks},"
        " action: deny}\n"
        f"  - {{id: token-out, match: {{type: withdrawal, assets: [{symbol}]}}, action: allow}}\n"
    )
    denied = created(api, contract_call(wallet.name, token, transfer(unlisted, 250_000_000)))
    assert denied["status"] == "rejected"
    assert denied["policy"]["rule"] == "deny-unlisted"
    assert (denied["type"], denied["asset"], denied["amount"]) == (
        "contract_call",
        symbol,
        "250000000",
    )
    assert denied["destination"] == unlisted

    data = transfer(listed, 250_000_000)
    allowed = created(api, contract_call(wallet.name, token, data, nonce=1))
    assert allowed["status"] == "approved", allowed
    assert allowed["policy"]["rule"] == "token-out"
    assert allowed["payload"]["summary"].startswith(
        f"transfer 250 {symbol} (250000000 base units) to {listed} via contract {token}"
    )
    assert signer.drain() == 1

    raw = api.get(allowed["id"]).json()["result"]["raw_transaction"]
    assert Account.recover_transaction(raw) == wallet.address
    fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    assert HexBytes(fields["data"]) == HexBytes(data)
    assert HexBytes(fields["to"]) == HexBytes(token)
    assert (fields["value"], fields["nonce"]) == (0, 1)
    created_entry = next(
        e
        for e in installation.ledger_entries("request.created")
        if e["data"]["request"] == allowed["id"]
    )
    details = created_entry["data"]["details"]
    assert details["judged_as"] == "withdrawal"
    assert details["method"] == "transfer"
    assert details["args"] == {"to": listed, "amount": "250000000"}


def test_transfer_from_counts_the_recipient_and_value_on_a_token_is_refused(
    api: Api, wallet: WalletInfo, installation: Installation
) -> None:
    symbol, token = register_token(installation, decimals=18)
    owner, recipient = random_address(), random_address()
    data = "0x23b872dd" + encode(["address", "address", "uint256"], [owner, recipient, 5]).hex()
    body = created(api, contract_call(wallet.name, token, data))
    assert (body["asset"], body["amount"], body["destination"]) == (symbol, "5", recipient)

    before = installation.counts()
    response = api.create(
        contract_call(wallet.name, token, transfer(recipient, 1), value="1", nonce=1)
    )
    assert response.status_code == 422
    assert "value must be 0" in response.json()["detail"]
    assert installation.counts() == before


def test_unknown_selector_is_denied_unless_allowed_by_name(
    api: Api, wallet: WalletInfo, installation: Installation, policy: Policy
) -> None:
    target = random_address()
    policy(CALLS_ALLOWED)
    denied = created(api, contract_call(wallet.name, target, "0xdeadbeef", value="7"))
    assert denied["status"] == "rejected"
    assert denied["policy"]["rule"] is None  # the flag gate keeps the allow rule from matching
    assert (denied["asset"], denied["amount"], denied["destination"]) == ("ETH", "7", target)

    policy(
        "version: 1\nrules:\n"
        "  - {id: odd-calls, match: {type: contract_call, allow_unknown_method: true},"
        " action: allow}\n"
    )
    allowed = created(api, contract_call(wallet.name, target, "0xdeadbeef", value="7", nonce=1))
    assert allowed["status"] == "approved"
    assert allowed["policy"]["rule"] == "odd-calls"


def test_safe_delegatecall_is_denied_unless_allowed_by_name(
    api: Api, wallet: WalletInfo, policy: Policy
) -> None:
    safe, module = random_address(), random_address()
    policy(CALLS_ALLOWED)
    plain = created(api, contract_call(wallet.name, safe, safe_exec(module, b"", 0)))
    assert plain["status"] == "approved"
    delegated = created(api, contract_call(wallet.name, safe, safe_exec(module, b"", 1), nonce=1))
    assert delegated["status"] == "rejected"
    assert delegated["policy"]["rule"] is None  # the flag gate keeps the allow rule from matching
    assert "DELEGATECALL" in delegated["payload"]["summary"]

    policy(
        "version: 1\nrules:\n"
        f"  - {{id: safe-ops, match: {{type: contract_call, contracts: ['{safe}'],"
        " allow_delegatecall: true}, action: allow}\n"
    )
    allowed = created(api, contract_call(wallet.name, safe, safe_exec(module, b"", 1), nonce=2))
    assert allowed["status"] == "approved"
    assert allowed["policy"]["rule"] == "safe-ops"


def test_unlimited_approval_is_denied_unless_allowed_by_name(
    api: Api, wallet: WalletInfo, installation: Installation, policy: Policy
) -> None:
    symbol, token = register_token(installation)
    spender = random_address()
    policy(CALLS_ALLOWED)
    limited = created(api, contract_call(wallet.name, token, approve(spender, 10**6)))
    assert limited["status"] == "approved"
    assert (limited["asset"], limited["amount"], limited["destination"]) == (
        symbol,
        "1000000",
        spender,
    )
    unlimited = created(
        api, contract_call(wallet.name, token, approve(spender, 2**256 - 1), nonce=1)
    )
    assert unlimited["status"] == "rejected"
    assert unlimited["policy"]["rule"] is None  # the flag gate keeps the allow rule from matching

    policy(
        "version: 1\nrules:\n"
        "  - {id: by-name, match: {type: contract_call, methods: ['approve(address,uint256)'],"
        " allow_unlimited_approval: true}, action: allow}\n"
    )
    allowed = created(api, contract_call(wallet.name, token, approve(spender, 2**256 - 1), nonce=2))
    assert allowed["status"] == "approved"


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        pytest.param({"value": 0}, "value", id="value-number"),
        pytest.param({"value": 1.5}, "decimal strings", id="value-float"),
        pytest.param({"memo": "x"}, "memo: unknown field", id="unknown-field"),
        pytest.param({"data": "0xa9059c"}, "4-byte", id="short-calldata"),
        pytest.param({"data": "0xzz"}, "hex", id="calldata-not-hex"),
        pytest.param({"to": "0x1234"}, "to", id="bad-to"),
        pytest.param({"evm": {"nonce": 0, "gas": 100000}}, "max_fee_per_gas", id="evm-missing"),
    ],
)
def test_bad_contract_call_body_is_refused_and_stores_nothing(
    api: Api,
    wallet: WalletInfo,
    installation: Installation,
    change: dict[str, Any],
    detail: str,
) -> None:
    body = contract_call(wallet.name, random_address(), "0xdeadbeef") | change
    before = installation.counts()
    response = api.create(body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert detail in response.json()["detail"]
    assert installation.counts() == before


def test_signed_token_transfer_executes_on_an_evm(
    api: Api, wallet: WalletInfo, signer: SignerWorker, installation: Installation
) -> None:
    """py-evm executes what custody signed: the token moves exactly the approved amount."""
    tester = EthereumTester(PyEVMBackend())
    funder = tester.get_accounts()[0]
    fees = {"max_fee_per_gas": 30 * 10**9, "max_priority_fee_per_gas": 10**9}
    deployed = tester.send_transaction(
        {
            "from": funder,
            "data": "0x" + init_code(wallet.address, 1000 * 10**6).hex(),
            "gas": 300_000,
            **fees,
        }
    )
    token = tester.get_transaction_receipt(deployed)["contract_address"]
    tester.send_transaction(
        {"from": funder, "to": wallet.address, "value": 10**18, "gas": 21_000, **fees}
    )
    _, _ = register_token(installation, contract=token)
    recipient = random_address()

    body = created(api, contract_call(wallet.name, token, transfer(recipient, 250 * 10**6)))
    assert body["status"] == "approved"
    assert signer.drain() == 1
    raw = api.get(body["id"]).json()["result"]["raw_transaction"]

    # py-evm does not check a typed transaction's chain id against its own (see
    # tests/chains/test_chains_execution.py), so the chain-1 transaction runs here.
    receipt = tester.get_transaction_receipt(tester.send_raw_transaction(raw))
    assert receipt["status"] == 1

    def balance(holder: str) -> int:
        data = "0x70a08231" + encode(["address"], [holder]).hex()
        return int(tester.call({"from": funder, "to": token, "data": data}), 16)

    assert balance(recipient) == 250 * 10**6
    assert balance(wallet.address) == 750 * 10**6
