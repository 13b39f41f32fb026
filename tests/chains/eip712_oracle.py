"""An EIP-712 encoder written from the specification, the test oracle for eth-account's.

This was custody's production encoder until hashing moved to eth-account (its per-value
re-encoding of types was quadratic on hostile input). It reads the client's own spelling of the
message, not the canonical one, so agreement checks the canonical rewrite as well as the hash.
Values are read by production's `atomic_value`; only the encoding is independent here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from eth_abi.abi import encode
from eth_utils.crypto import keccak

from custody.chains.evm.eip712 import DOMAIN_FIELDS
from custody.chains.evm.typed_atoms import atomic_value

Types = Mapping[str, tuple[tuple[str, str], ...]]
_ARRAY = re.compile(r"(.+)\[([0-9]*)\]")


def oracle_digest(data: Mapping[str, Any]) -> bytes:
    """keccak(0x1901 || hashStruct(domain) || hashStruct(message)) of valid typed data."""
    types: dict[str, tuple[tuple[str, str], ...]] = {
        name: tuple((f["name"], f["type"]) for f in fields)
        for name, fields in data["types"].items()
    }
    types["EIP712Domain"] = tuple((n, t) for n, t in DOMAIN_FIELDS if n in data["domain"])
    separator = hash_struct(types, "EIP712Domain", data["domain"])
    struct_hash = hash_struct(types, data["primaryType"], data["message"])
    return keccak(b"\x19\x01" + separator + struct_hash)


def encode_type(types: Types, primary: str) -> str:
    """`Mail(Person from,Person to,string contents)Person(string name,address wallet)`."""
    deps = sorted(_dependencies(types, primary, set()) - {primary})
    return "".join(
        f"{name}({','.join(f'{kind} {field}' for field, kind in types[name])})"
        for name in [primary, *deps]
    )


def _dependencies(types: Types, name: str, found: set[str]) -> set[str]:
    if name in found or name not in types:
        return found
    found.add(name)
    for _, kind in types[name]:
        _dependencies(types, _base(kind), found)
    return found


def _base(kind: str) -> str:
    while (match := _ARRAY.fullmatch(kind)) is not None:
        kind = match[1]
    return kind


def hash_struct(types: Types, name: str, value: Mapping[str, Any]) -> bytes:
    encoded = b"".join(
        _encode_value(types, kind, value[field], f"{name}.{field}") for field, kind in types[name]
    )
    return keccak(keccak(text=encode_type(types, name)) + encoded)


def _encode_value(types: Types, kind: str, value: Any, path: str) -> bytes:
    array = _ARRAY.fullmatch(kind)
    if array is not None:
        return keccak(b"".join(_encode_value(types, array[1], item, path) for item in value))
    if kind in types:
        return hash_struct(types, kind, value)
    if kind == "string":
        return keccak(value.encode("utf-8"))
    if kind == "bytes":
        atom = atomic_value("bytes", value, path)
        assert isinstance(atom, bytes)
        return keccak(atom)
    return encode([kind], [atomic_value(kind, value, path)])
