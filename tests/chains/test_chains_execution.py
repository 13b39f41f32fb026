"""Transactions built and assembled by custody, executed by an EVM that did not make them."""

from __future__ import annotations

from typing import Any

import pytest
from chains_support import KEY, address_of, sign
from coincurve import PrivateKey
from eth_tester import EthereumTester, PyEVMBackend

from custody.chains import (
    Eip1559Fields,
    EvmAddress,
    UnsignedEvmTx,
    assemble_signed,
    build_eip1559,
    verify_signed,
)

FUNDING = 10**18
WITHDRAWAL = 123_456_789_000_000_000
TIP = 10**9


@pytest.fixture
def tester() -> Any:
    return EthereumTester(PyEVMBackend())


def fund(tester: Any, address: EvmAddress) -> None:
    base_fee = tester.get_block_by_number("latest")["base_fee_per_gas"]
    tester.send_transaction(
        {
            "from": tester.get_accounts()[0],
            "to": str(address),
            "value": FUNDING,
            "gas": 21000,
            "max_fee_per_gas": 2 * base_fee + TIP,
            "max_priority_fee_per_gas": TIP,
        }
    )


def withdrawal(tester: Any, chain_id: int, to: EvmAddress) -> UnsignedEvmTx:
    base_fee = tester.get_block_by_number("latest")["base_fee_per_gas"]
    return build_eip1559(
        Eip1559Fields(
            chain_id=chain_id,
            nonce=tester.get_nonce(str(address_of(KEY))),
            to=to,
            value=WITHDRAWAL,
            gas=21000,
            max_fee_per_gas=2 * base_fee + TIP,
            max_priority_fee_per_gas=TIP,
        )
    )


def test_chain_id_of_the_tester(tester: Any) -> None:
    # Read, not assumed. Note that py-evm under eth-tester does not check a typed transaction's
    # chain id against its own (it executes chain id 1 too), so the known-answer vectors, not
    # this EVM, are what pin chain id encoding.
    assert tester.backend.chain.chain_id == 131277322940537


def test_withdrawal_executes_and_moves_exactly_the_value(tester: Any) -> None:
    wallet = address_of(KEY)
    recipient = address_of(PrivateKey(bytes.fromhex("22" * 32)))
    fund(tester, wallet)
    assert tester.get_balance(str(recipient)) == 0

    unsigned = withdrawal(tester, tester.backend.chain.chain_id, recipient)
    signed = assemble_signed(unsigned, *sign(KEY, unsigned.digest))
    verify_signed(signed, wallet)
    tx_hash = tester.send_raw_transaction("0x" + signed.raw.hex())

    assert tx_hash == signed.tx_hash.prefixed()
    executed = tester.get_transaction_by_hash(tx_hash)
    assert executed["from"] == str(wallet)
    assert executed["chain_id"] == tester.backend.chain.chain_id
    receipt = tester.get_transaction_receipt(tx_hash)
    assert receipt["status"] == 1
    assert tester.get_balance(str(recipient)) == WITHDRAWAL
    fee = receipt["gas_used"] * receipt["effective_gas_price"]
    assert tester.get_balance(str(wallet)) == FUNDING - WITHDRAWAL - fee
    assert tester.get_nonce(str(wallet)) == 1
