from __future__ import annotations

import json

from chains_support import KEY, KEY_HEX, address_of, sign
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.chains import (
    Eip1559Fields,
    EvmAddress,
    assemble_signed,
    build_eip1559,
    unsigned_from_payload,
    verify_signed,
)


@st.composite
def eip1559_fields(draw: st.DrawFn) -> Eip1559Fields:
    max_fee = draw(st.integers(0, 2**256 - 1))
    return Eip1559Fields(
        chain_id=draw(st.integers(1, 2**64 - 1)),
        nonce=draw(st.integers(0, 2**64 - 1)),
        to=EvmAddress(draw(st.binary(min_size=20, max_size=20))),
        value=draw(st.integers(0, 2**256 - 1)),
        gas=draw(st.integers(21_000, 30_000_000)),
        max_fee_per_gas=max_fee,
        max_priority_fee_per_gas=draw(st.integers(0, max_fee)),
        data=draw(st.binary(max_size=300)),
    )


# No example database: it would write .hypothesis/ outside the test tree.
@settings(database=None, deadline=None, max_examples=60)
@given(eip1559_fields())
def test_round_trip_through_stored_json_and_signing(fields: Eip1559Fields) -> None:
    unsigned = build_eip1559(fields)
    stored = json.loads(json.dumps(unsigned.payload))
    rebuilt = unsigned_from_payload(stored)
    assert rebuilt.digest == unsigned.digest
    assert rebuilt.fields == fields

    signed = assemble_signed(rebuilt, *sign(KEY, unsigned.digest))
    verify_signed(signed, address_of(KEY))
    expected = Account.sign_transaction(fields.as_eth_account_dict(), "0x" + KEY_HEX)
    assert signed.raw == bytes(expected.raw_transaction)
