"""EIP-712 digests, held against eth-account as an independent implementation."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data

from custody.chains import InvalidPayload, typed_data_digest

DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
# The example of the EIP-712 specification; its digest is published there.
MAIL: dict[str, Any] = {
    "types": {
        "EIP712Domain": DOMAIN_TYPE,
        "Person": [{"name": "name", "type": "string"}, {"name": "wallet", "type": "address"}],
        "Mail": [
            {"name": "from", "type": "Person"},
            {"name": "to", "type": "Person"},
            {"name": "contents", "type": "string"},
        ],
    },
    "primaryType": "Mail",
    "domain": {
        "name": "Ether Mail",
        "version": "1",
        "chainId": 1,
        "verifyingContract": "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC",
    },
    "message": {
        "from": {"name": "Cow", "wallet": "0xCD2a3d9F938E13CD947Ec05AbC7FE734Df8DD826"},
        "to": {"name": "Bob", "wallet": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"},
        "contents": "Hello, Bob!",
    },
}
SPEC_DIGEST = "be609aee343fb3c4b28e1df9e632fca64fcfaede20f02e86244efddf30957bd2"

# A trade-shaped order with arrays, bytes, bools, signed ints and integers as strings.
ORDER: dict[str, Any] = {
    "types": {
        "EIP712Domain": DOMAIN_TYPE,
        "Order": [
            {"name": "sellToken", "type": "address"},
            {"name": "buyToken", "type": "address"},
            {"name": "sellAmount", "type": "uint256"},
            {"name": "buyAmount", "type": "uint256"},
            {"name": "validTo", "type": "uint32"},
            {"name": "appData", "type": "bytes32"},
            {"name": "partiallyFillable", "type": "bool"},
            {"name": "offset", "type": "int64"},
            {"name": "hooks", "type": "Hook[]"},
            {"name": "memo", "type": "bytes"},
        ],
        "Hook": [{"name": "target", "type": "address"}, {"name": "gas", "type": "uint256"}],
    },
    "primaryType": "Order",
    "domain": {
        "name": "Gnosis Protocol",
        "version": "v2",
        "chainId": 1,
        "verifyingContract": "0x9008D19f58AAbD9eD0D60971565AA8510560ab41",
    },
    "message": {
        "sellToken": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
        "buyToken": "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
        "sellAmount": "250000000000",
        "buyAmount": 10**20,
        "validTo": 1767225600,
        "appData": "0x" + "ab" * 32,
        "partiallyFillable": False,
        "offset": -5,
        "hooks": [{"target": "0x0DbBACFd06dbdB317eefEFAfb9fC5A06Ea04CD2A", "gas": "0x5208"}],
        "memo": "0xdeadbeef",
    },
}


def reference(data: dict[str, Any]) -> str:
    return bytes(_hash_eip191_message(encode_typed_data(full_message=data))).hex()


def test_spec_example() -> None:
    message = typed_data_digest(MAIL)
    assert message.digest.hex() == SPEC_DIGEST == reference(MAIL)
    assert message.primary_type == "Mail"
    assert message.chain_id.value == 1
    assert str(message.verifying_contract) == MAIL["domain"]["verifyingContract"]


def test_order_matches_eth_account() -> None:
    assert typed_data_digest(ORDER).digest.hex() == reference(ORDER)


def test_signature_over_the_digest_recovers() -> None:
    account = Account.from_key(b"\x01" * 32)
    signed = account.sign_typed_data(full_message=ORDER)
    digest = typed_data_digest(ORDER).digest
    assert Account._recover_hash(digest.value, signature=signed.signature) == account.address


def test_domain_type_may_be_left_out() -> None:
    bare = copy.deepcopy(MAIL)
    del bare["types"]["EIP712Domain"]
    assert typed_data_digest(bare).digest.hex() == SPEC_DIGEST


def _broken(path: list[Any], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(ORDER)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["domain", "chainId"], DELETE, "domain lacks chainId"),
        (["domain", "verifyingContract"], DELETE, "domain lacks verifyingContract"),
        (["primaryType"], "Nope", "primaryType must name"),
        (["primaryType"], "EIP712Domain", "primaryType must name"),
        (["message", "extra"], 1, "unexpected \\['extra'\\]"),
        (["message", "memo"], DELETE, "missing \\['memo'\\]"),
        (["message", "validTo"], 2**32, "message.validTo does not fit uint32"),
        (["message", "sellAmount"], -1, "does not fit uint256"),
        (["message", "sellAmount"], 1.5, "must be an integer"),
        (["message", "sellAmount"], True, "must be an integer"),
        (["message", "sellAmount"], "1e6", "must be an integer"),
        (["message", "appData"], "0x" + "ab" * 31, "exactly 32 bytes"),
        (["message", "partiallyFillable"], 0, "true or false"),
        (["message", "sellToken"], "0xA0B86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "checksum"),
        (["message", "hooks"], {}, "must be a list"),
        (
            ["types", "Hook"],
            [{"name": "target", "type": "address"}, {"name": "gas", "type": "uint7"}],
            "unknown type uint7",
        ),
        (["types", "EIP712Domain"], DOMAIN_TYPE[:2], "EIP712Domain must list exactly"),
        (["extra"], 1, "exactly types, primaryType, domain and message"),
    ],
)
def test_invalid_typed_data(path: list[Any], value: Any, message: str) -> None:
    with pytest.raises(InvalidPayload, match=message):
        typed_data_digest(_broken(path, value))
