from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from chains_support import KEY, KEY_HEX, address_of, sign
from eth_account import Account
from eth_account.typed_transactions.typed_transaction import TypedTransaction

from custody.chains import (
    BUILTIN_CHAINS,
    Chain,
    Eip1559Fields,
    EvmAddress,
    InvalidPayload,
    assemble_signed,
    build_eip1559,
    summary,
    unsigned_from_payload,
    verify_signed,
)

TRANSFER_DATA = bytes.fromhex(
    "a9059cbb00000000000000000000000009616c3d61b3331fc4109a9e41a8bdb7d9776609"
    "00000000000000000000000000000000000000000000000000000000000f4240"
)

# (eth-account transaction dict, signing hash, raw signed with KEY), all three produced by
# eth-account 0.14 alone, so these pin behaviour independently of the code under test.
VECTORS: list[tuple[dict[str, Any], str, str]] = [
    (
        {
            "chainId": 1,
            "nonce": 7,
            "to": "0x09616C3d61b3331fc4109a9E41a8BDB7d9776609",
            "value": 1_500_000_000_000_000_000,
            "gas": 21000,
            "maxFeePerGas": 2_000_000_000,
            "maxPriorityFeePerGas": 1_000_000_000,
            "data": b"",
        },
        "07688cc222130ee7e118c71bdbdaf8f723a7540634401fdd0a636a2cd6c0b6bf",
        "02f8720107843b9aca0084773594008252089409616c3d61b3331fc4109a9e41a8bdb7d977660988"
        "14d1120d7b16000080c080a0a5f1dfbd4bd91cdc12bf262a3f9c163b13dc293f9d8c789889249cfd"
        "de97cfdca00c2d00927fe56716898ceab5804930a2045282475fefe2b1b267a5bfbbea72f5",
    ),
    (
        {
            "chainId": 11155111,
            "nonce": 0,
            "to": "0xdAC17F958D2ee523a2206206994597C13D831ec7",
            "value": 0,
            "gas": 65000,
            "maxFeePerGas": 30_000_000_000,
            "maxPriorityFeePerGas": 30_000_000_000,
            "data": TRANSFER_DATA,
        },
        "4af90313d1a641e4c8c092fdbedc7ede11c735408f790058054c55f937a00006",
        "02f8b483aa36a7808506fc23ac008506fc23ac0082fde894dac17f958d2ee523a2206206994597c1"
        "3d831ec780b844a9059cbb00000000000000000000000009616c3d61b3331fc4109a9e41a8bdb7d9"
        "77660900000000000000000000000000000000000000000000000000000000000f4240c001a0bd79"
        "279b65a03c8ea7eedeb525d6ec8607bac3b43009eccd8723bfa9b05b46d3a03ea0291d2aff52ff33"
        "20e4f351b8ed6bd2a203b1e79ea33065b7b8bf20eb453e",
    ),
    (
        {
            "chainId": 2**64 - 1,
            "nonce": 2**64 - 1,
            "to": "0xFFfFfFffFFfffFFfFFfFFFFFffFFFffffFfFFFfF",
            "value": 2**256 - 1,
            "gas": 30_000_000,
            "maxFeePerGas": 2**256 - 1,
            "maxPriorityFeePerGas": 0,
            "data": b"\x00",  # a single byte below 0x80 is its own RLP encoding
        },
        "9229099d4cd20ecee8ce7b9df9d2072fd27f24aea7f260b487b12341c2f1a6fd",
        "02f8b488ffffffffffffffff88ffffffffffffffff80a0ffffffffffffffffffffffffffffffffff"
        "ffffffffffffffffffffffffffffff8401c9c38094ffffffffffffffffffffffffffffffffffffff"
        "ffa0ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff00c080a01abb"
        "207cf8e0b8fd804ee2ab097c51433f82c5e4dae1907a6be88061cfb1ff2ba003da789a39001c9bb2"
        "3277ac90beb19cc23c05e316b65880e95d923b046de191",
    ),
]


def fields_from(tx: dict[str, Any]) -> Eip1559Fields:
    return Eip1559Fields(
        chain_id=tx["chainId"],
        nonce=tx["nonce"],
        to=EvmAddress.parse(tx["to"]),
        value=tx["value"],
        gas=tx["gas"],
        max_fee_per_gas=tx["maxFeePerGas"],
        max_priority_fee_per_gas=tx["maxPriorityFeePerGas"],
        data=tx["data"],
    )


def simple_fields(**changes: Any) -> Eip1559Fields:
    return replace(fields_from(VECTORS[0][0]), **changes)


@pytest.mark.parametrize(("tx", "digest_hex", "raw_hex"), VECTORS)
def test_known_answer_vectors_match_eth_account(
    tx: dict[str, Any], digest_hex: str, raw_hex: str
) -> None:
    unsigned = build_eip1559(fields_from(tx))
    eth_tx = tx | {"type": 2, "accessList": []}
    assert unsigned.digest.hex() == digest_hex
    assert unsigned.digest.value == TypedTransaction.from_dict(dict(eth_tx)).hash()
    assert unsigned.unsigned_bytes[0] == 2

    signed = assemble_signed(unsigned, *sign(KEY, unsigned.digest))
    expected = Account.sign_transaction(dict(eth_tx), "0x" + KEY_HEX)
    assert signed.raw.hex() == raw_hex
    assert signed.raw == bytes(expected.raw_transaction)
    assert signed.tx_hash.value == bytes(expected.hash)
    verify_signed(signed, address_of(KEY))


def test_payload_is_json_ready_and_canonical() -> None:
    unsigned = build_eip1559(fields_from(VECTORS[1][0]))
    assert unsigned.payload == {
        "type": "evm.eip1559",
        "chain_id": "11155111",
        "nonce": "0",
        "to": "0xdAC17F958D2ee523a2206206994597C13D831ec7",
        "value": "0",
        "gas": "65000",
        "max_fee_per_gas": "30000000000",
        "max_priority_fee_per_gas": "30000000000",
        "data": "0x" + TRANSFER_DATA.hex(),
    }


@pytest.mark.parametrize("tx", [vector[0] for vector in VECTORS])
def test_payload_round_trip_rederives_the_digest(tx: dict[str, Any]) -> None:
    unsigned = build_eip1559(fields_from(tx))
    rebuilt = unsigned_from_payload(unsigned.payload)
    assert rebuilt.digest == unsigned.digest
    assert rebuilt == unsigned


def test_payload_cannot_be_mutated_through_the_transaction() -> None:
    unsigned = build_eip1559(simple_fields())
    unsigned.payload["value"] = "1"
    assert unsigned.payload["value"] == "1500000000000000000"


@pytest.mark.parametrize(
    ("key", "tampered"),
    [
        ("chain_id", "11155111"),
        ("nonce", "8"),
        ("to", "0xdAC17F958D2ee523a2206206994597C13D831ec7"),
        ("value", "1500000000000000001"),
        ("gas", "21001"),
        ("max_fee_per_gas", "2000000001"),
        ("max_priority_fee_per_gas", "999999999"),
        ("data", "0x00"),
    ],
)
def test_tampering_any_field_changes_the_digest(key: str, tampered: str) -> None:
    original = build_eip1559(simple_fields())
    payload = original.payload | {key: tampered}
    assert unsigned_from_payload(payload).digest != original.digest


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"to": "0x09616c3d61b3331fc4109a9e41a8bdb7d9776609"}, "to is not in canonical form"),
        ({"to": "0x09616C3d61b3331fc4109a9E41a8BDB7d9776608"}, "wrong EIP-55 checksum"),
        ({"value": "01500000000000000000"}, "leading zeros"),
        ({"nonce": 7}, "nonce must be a decimal string, got a number"),
        ({"data": "0xAB"}, "lowercase hex"),
        ({"data": "0x0"}, "even number"),
        ({"data": ""}, "data must be 0x"),
        ({"type": "evm.legacy"}, "payload type"),
        ({"gas": "20999"}, "gas must be between"),
        ({"max_priority_fee_per_gas": "2000000001"}, "must not exceed max_fee_per_gas"),
        ({"access_list": []}, r"unknown \['access_list'\]"),
    ],
)
def test_payload_parsing_is_strict(changes: dict[str, object], message: str) -> None:
    payload: dict[str, object] = {**build_eip1559(simple_fields()).payload, **changes}
    with pytest.raises(InvalidPayload, match=message):
        unsigned_from_payload(payload)


def test_payload_with_missing_field_or_wrong_shape_is_refused() -> None:
    payload = build_eip1559(simple_fields()).payload
    del payload["nonce"]
    with pytest.raises(InvalidPayload, match=r"missing \['nonce'\]"):
        unsigned_from_payload(payload)
    with pytest.raises(InvalidPayload, match="payload must be an object"):
        unsigned_from_payload([])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"chain_id": 0}, "chain id must be positive"),
        ({"nonce": 2**64}, "nonce is too large"),
        ({"nonce": -1}, "nonce must not be negative"),
        ({"value": 2**256}, "value is too large"),
        ({"value": True}, "value must be an integer"),
        ({"gas": 20_999}, "gas must be between 21000 and 30000000"),
        ({"gas": 30_000_001}, "gas must be between"),
        ({"max_priority_fee_per_gas": 2_000_000_001}, "must not exceed"),
        ({"data": bytearray(b"x")}, "data must be bytes"),
        ({"data": bytes(128 * 1024 + 1)}, "data must be at most"),
        ({"to": "0x09616C3d61b3331fc4109a9E41a8BDB7d9776609"}, "to must be an EvmAddress"),
    ],
)
def test_fields_are_validated_where_built(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidPayload, match=message):
        simple_fields(**changes)


def test_summary_for_a_builtin_chain() -> None:
    payload = build_eip1559(simple_fields()).payload
    assert summary(payload) == (
        "send 1.5 ETH (1500000000000000000 wei) to 0x09616C3d61b3331fc4109a9E41a8BDB7d9776609"
        " on chain 1, nonce 7, max fee 0.000042 ETH"
    )


def test_summary_for_an_unknown_chain_and_with_call_data() -> None:
    fields = fields_from(VECTORS[1][0])
    payload = build_eip1559(replace(fields, chain_id=137, value=1)).payload
    assert summary(payload) == (
        "send 1 wei to 0xdAC17F958D2ee523a2206206994597C13D831ec7 on chain 137, nonce 0,"
        " max fee 1950000000000000 wei, with 68 bytes of call data"
    )
    polygon = Chain("polygon", "evm", 137, "POL", 18)
    assert summary(payload, polygon).startswith("send 0.000000000000000001 POL (1 wei) to ")
    with pytest.raises(InvalidPayload, match="payload is for chain 137, not ethereum"):
        summary(payload, BUILTIN_CHAINS["ethereum"])
