"""Calldata decoding with real calldata: hand-built ABI vectors and eth_abi-encoded calls."""

from __future__ import annotations

import pytest
from eth_abi.abi import encode
from hypothesis import given
from hypothesis import strategies as st

from custody.chains import InvalidPayload, decode_calldata
from custody.chains.evm.calldata import METHODS, UNLIMITED_APPROVAL
from custody.policy import CallFlag, selector_of

RECIPIENT = "0x09616C3d61b3331fc4109a9E41a8BDB7d9776609"
USDT = "0xdAC17F958D2ee523a2206206994597C13D831ec7"
OWNER = "0x0DbBACFd06dbdB317eefEFAfb9fC5A06Ea04CD2A"
ZERO = "0x" + "00" * 20
SAFE_TYPES = [
    "address",
    "uint256",
    "bytes",
    "uint8",
    "uint256",
    "uint256",
    "uint256",
    "address",
    "address",
    "bytes",
]

# A USDT transfer of 1 USDT (6 decimals) written out from the ABI spec by hand: selector
# keccak("transfer(address,uint256)")[:4], then the address left-padded to 32 bytes, then the
# amount 1_000_000 = 0xf4240 left-padded to 32 bytes. The same bytes as the ERC-20 vector of
# test_chains_eip1559.
USDT_TRANSFER = (
    "0xa9059cbb"
    "00000000000000000000000009616c3d61b3331fc4109a9e41a8bdb7d9776609"
    "00000000000000000000000000000000000000000000000000000000000f4240"
)
# approve(spender, 2**256 - 1): the "infinite approval" wallets ask for.
INFINITE_APPROVE = (
    "0x095ea7b3"
    "00000000000000000000000009616c3d61b3331fc4109a9e41a8bdb7d9776609"
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
)


def safe_tx(to: str, data: bytes, operation: int, value: int = 0) -> bytes:
    args = [to, value, data, operation, 0, 0, 0, ZERO, ZERO, b"\x11" * 65]
    return bytes.fromhex("6a761202") + encode(SAFE_TYPES, args)


def test_known_selectors() -> None:
    safe = (
        "execTransaction(address,uint256,bytes,uint8,uint256,uint256,uint256,address,address,bytes)"
    )
    assert {m.signature: s for s, m in METHODS.items()} == {
        "transfer(address,uint256)": "0xa9059cbb",
        "approve(address,uint256)": "0x095ea7b3",
        "transferFrom(address,address,uint256)": "0x23b872dd",
        "safeTransferFrom(address,address,uint256)": "0x42842e0e",
        "safeTransferFrom(address,address,uint256,bytes)": "0xb88d4fde",
        safe: "0x6a761202",
    }
    assert all(selector_of(m.signature) == s for s, m in METHODS.items())


def test_hand_built_usdt_transfer() -> None:
    call = decode_calldata(USDT_TRANSFER)
    assert (call.method, call.selector) == ("transfer", "0xa9059cbb")
    assert dict(call.args) == {"to": RECIPIENT, "amount": 1_000_000}
    assert call.flags == frozenset()
    assert decode_calldata(bytes.fromhex(USDT_TRANSFER[2:])) == call


def test_hand_built_infinite_approval_is_flagged() -> None:
    call = decode_calldata(INFINITE_APPROVE)
    assert call.method == "approve"
    assert call.args["amount"] == 2**256 - 1
    assert call.flags == {CallFlag.UNLIMITED_APPROVAL}


@pytest.mark.parametrize(
    ("amount", "unlimited"),
    [(0, False), (10**30, False), (UNLIMITED_APPROVAL - 1, False), (UNLIMITED_APPROVAL, True)],
)
def test_unlimited_approval_threshold(amount: int, unlimited: bool) -> None:
    data = "0x095ea7b3" + encode(["address", "uint256"], [RECIPIENT, amount]).hex()
    assert decode_calldata(data).unlimited_approval is unlimited


@pytest.mark.parametrize(
    ("signature", "values", "expected"),
    [
        (
            "transferFrom(address,address,uint256)",
            [OWNER, RECIPIENT, 5],
            {"from": OWNER, "to": RECIPIENT, "amount": 5},
        ),
        (
            "safeTransferFrom(address,address,uint256)",
            [OWNER, RECIPIENT, 7],
            {"from": OWNER, "to": RECIPIENT, "token_id": 7},
        ),
        (
            "safeTransferFrom(address,address,uint256,bytes)",
            [OWNER, RECIPIENT, 7, b"hello"],
            {"from": OWNER, "to": RECIPIENT, "token_id": 7, "data": b"hello"},
        ),
    ],
)
def test_eth_abi_encoded_calls(
    signature: str, values: list[object], expected: dict[str, object]
) -> None:
    types = signature[signature.index("(") + 1 : -1].split(",")
    call = decode_calldata(selector_of(signature) + encode(types, values).hex())
    assert call.signature == signature
    assert dict(call.args) == expected
    assert call.flags == frozenset()


def test_addresses_come_back_checksummed() -> None:
    data = "0xa9059cbb" + encode(["address", "uint256"], [RECIPIENT.lower(), 1]).hex()
    assert decode_calldata(data).args["to"] == RECIPIENT


def test_safe_delegatecall_is_flagged_and_inner_call_decoded() -> None:
    inner = bytes.fromhex(USDT_TRANSFER[2:])
    call = decode_calldata(safe_tx(USDT, inner, operation=1))
    assert call.method == "execTransaction"
    assert call.delegatecall
    assert call.args["operation"] == 1
    assert call.args["to"] == USDT
    assert call.inner is not None
    assert call.inner.method == "transfer"
    assert call.inner.args["amount"] == 1_000_000
    assert call.flags == {CallFlag.DELEGATECALL}


def test_safe_call_carries_the_inner_flags() -> None:
    call = decode_calldata(safe_tx(USDT, bytes.fromhex(INFINITE_APPROVE[2:]), operation=0))
    assert not call.delegatecall
    assert call.flags == {CallFlag.UNLIMITED_APPROVAL}
    unknown = decode_calldata(safe_tx(USDT, b"\xde\xad\xbe\xef", operation=0))
    assert unknown.flags == {CallFlag.UNKNOWN_METHOD}
    broken = decode_calldata(safe_tx(USDT, bytes.fromhex("a9059cbb") + b"\x00" * 10, operation=0))
    assert broken.inner is not None
    assert broken.inner.unknown_method


def test_safe_value_transfer_has_no_inner_call() -> None:
    call = decode_calldata(safe_tx(RECIPIENT, b"", operation=0, value=10**18))
    assert call.inner is None
    assert call.args["value"] == 10**18
    assert call.flags == frozenset()


def test_unknown_selector() -> None:
    call = decode_calldata("0x12345678")
    assert (call.method, call.selector, call.signature) == ("unknown", "0x12345678", None)
    assert call.flags == {CallFlag.UNKNOWN_METHOD}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("0x", "4-byte selector"),
        ("0xa9059c", "4-byte selector"),
        ("a9059cbb", "0x-prefixed hex"),
        ("0xa9059cbz", "not valid hex"),
        ("0xa9059cbb", "does not decode"),
        (USDT_TRANSFER[:-2], "does not decode"),
        (USDT_TRANSFER + "00", "not canonically encoded"),
        (USDT_TRANSFER + "00" * 32, "not canonically encoded"),
        # dirty padding: a byte set in the 12 zero bytes before the address
        ("0xa9059cbb" + "ff" + USDT_TRANSFER[12:], "does not decode|not canonically"),
    ],
)
def test_malformed_calldata(data: str, message: str) -> None:
    with pytest.raises(InvalidPayload, match=message):
        decode_calldata(data)


def test_safe_operation_out_of_range() -> None:
    with pytest.raises(InvalidPayload, match="Safe operation must be 0"):
        decode_calldata(safe_tx(USDT, b"", operation=2))


def test_decoded_args_are_read_only() -> None:
    call = decode_calldata(USDT_TRANSFER)
    with pytest.raises(TypeError):
        call.args["amount"] = 0  # type: ignore[index]


@given(st.binary(max_size=400))
def test_any_bytes_decode_or_raise_invalid_payload(data: bytes) -> None:
    try:
        call = decode_calldata(data)
    except InvalidPayload:
        return
    assert call.selector == "0x" + data[:4].hex()


@given(to=st.binary(min_size=20, max_size=20), amount=st.integers(0, 2**256 - 1))
def test_transfer_round_trip(to: bytes, amount: int) -> None:
    call = decode_calldata("0xa9059cbb" + encode(["address", "uint256"], [to, amount]).hex())
    assert call.args["amount"] == amount
    assert str(call.args["to"]).lower() == "0x" + to.hex()
