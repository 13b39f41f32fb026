"""eth-account's EIP-712 hashing (production) against the specification's encoder (the oracle),
on the known vectors and on random valid typed data in every spelling clients may use."""

from __future__ import annotations

import copy
from typing import Any

from eip712_oracle import oracle_digest
from eth_utils.address import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st
from test_chains_eip712 import MAIL, ORDER, SPEC_DIGEST

from custody.chains.evm.eip712 import DOMAIN_FIELDS, canonical_typed_data

ATOMS = ["address", "bool", "string", "bytes", "bytes1", "bytes32", "bytes7", "uint8", "uint256"]
ATOMS += ["uint40", "int8", "int256", "int64"]


def test_oracle_agrees_on_the_known_vectors() -> None:
    bare = copy.deepcopy(MAIL)
    del bare["types"]["EIP712Domain"]
    for data in (MAIL, ORDER, bare):
        canonical, message = canonical_typed_data(data)
        assert message.digest.value == oracle_digest(data) == oracle_digest(canonical)
    assert oracle_digest(MAIL).hex() == SPEC_DIGEST


@st.composite
def type_graphs(draw: st.DrawFn) -> dict[str, list[tuple[str, str]]]:
    """T0 (the primary) .. Tn; a type uses only later ones, so nesting stays within the caps."""
    count = draw(st.integers(1, 3))
    types: dict[str, list[tuple[str, str]]] = {}
    for index in range(count):
        kinds = st.sampled_from(ATOMS).map(lambda k: (k, 2))
        if index + 1 < count:
            later = st.sampled_from([f"T{j}" for j in range(index + 1, count)])
            kinds = kinds | later.map(lambda k: (k, 1))
        fields = draw(st.lists(kinds, max_size=4))
        types[f"T{index}"] = [
            (f"f{n}", kind + draw(_suffix(dims))) for n, (kind, dims) in enumerate(fields)
        ]
    return types


def _suffix(dims: int) -> st.SearchStrategy[str]:
    one = st.sampled_from(["[]", "[1]", "[2]"])
    return st.lists(one, max_size=dims).map("".join)


def _integer(draw: st.DrawFn, kind: str) -> Any:
    bits = int(kind.lstrip("uint"))
    if kind.startswith("u"):
        number = draw(st.integers(0, 2**bits - 1))
        return draw(st.sampled_from([number, str(number), hex(number)]))
    number = draw(st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
    return draw(st.sampled_from([number, str(number)]))


def _atom(draw: st.DrawFn, kind: str) -> Any:
    if kind == "address":
        raw = draw(st.binary(min_size=20, max_size=20)).hex()
        return draw(st.sampled_from(["0x" + raw, to_checksum_address("0x" + raw)]))
    if kind == "bool":
        return draw(st.booleans())
    if kind == "string":
        return draw(st.text(st.characters(exclude_categories=["Cs"]), max_size=8))
    if kind.startswith("bytes"):
        size = int(kind[5:]) if kind != "bytes" else draw(st.integers(0, 40))
        raw = draw(st.binary(min_size=size, max_size=size)).hex()
        return "0x" + draw(st.sampled_from([raw, raw.upper()]))
    return _integer(draw, kind)


def _value(draw: st.DrawFn, types: dict[str, list[tuple[str, str]]], kind: str) -> Any:
    if kind.endswith("]"):
        start = kind.rindex("[")
        length = kind[start + 1 : -1]
        size = int(length) if length else draw(st.integers(0, 2))
        return [_value(draw, types, kind[:start]) for _ in range(size)]
    if kind in types:
        return {field: _value(draw, types, sub) for field, sub in types[kind]}
    return _atom(draw, kind)


@st.composite
def typed_data(draw: st.DrawFn) -> dict[str, Any]:
    types = draw(type_graphs())
    domain: dict[str, Any] = {
        "name": draw(st.text(max_size=6, alphabet="abc XYZ")),
        "version": "1",
        "chainId": draw(st.integers(1, 2**64 - 1)),
        "verifyingContract": _atom(draw, "address"),
    }
    if draw(st.booleans()):
        domain["salt"] = _atom(draw, "bytes32")
    declared = {name: [{"name": f, "type": k} for f, k in fields] for name, fields in types.items()}
    if draw(st.booleans()):
        declared["EIP712Domain"] = [{"name": n, "type": t} for n, t in DOMAIN_FIELDS if n in domain]
    return {
        "types": declared,
        "primaryType": "T0",
        "domain": domain,
        "message": _value(draw, types, "T0"),
    }


# No example database: it would write .hypothesis/ outside the test tree.
@settings(database=None, deadline=None, max_examples=150)
@given(typed_data())
def test_eth_account_hashing_agrees_with_the_oracle(data: dict[str, Any]) -> None:
    canonical, message = canonical_typed_data(data)
    assert message.digest.value == oracle_digest(data)
    assert message.digest.value == oracle_digest(canonical)
    # The canonical form is a fixed point: stored payloads re-derive exactly (the signer checks).
    assert canonical_typed_data(canonical)[0] == canonical
