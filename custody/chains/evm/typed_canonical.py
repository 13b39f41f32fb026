"""One spelling for one EIP-712 message: what is stored, shown to approvers and signed.

Clients may write an integer as a JSON number, a decimal or a hex string, and an address in
either case; all hash the same. The stored form spells each value one way (integers as decimal
strings, so no JSON number can lose precision in the ledger; addresses EIP-55; bytes lower-case
hex) and lists `EIP712Domain` explicitly, so any EIP-712 implementation can re-hash it. The
canonical form is hashed again and must give the client's digest: rewriting never changes meaning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from custody.chains.evm.eip712 import (
    _ARRAY,
    DOMAIN_FIELDS,
    TypedMessage,
    _types,
    atomic_value,
    typed_data_digest,
)
from custody.errors import CustodyError

Types = Mapping[str, tuple[tuple[str, str], ...]]


def canonical_typed_data(data: object) -> tuple[dict[str, Any], TypedMessage]:
    """The validated message in canonical form, and its digest (raises InvalidPayload)."""
    message = typed_data_digest(data)
    assert isinstance(data, Mapping)  # typed_data_digest checked the shape
    domain = data["domain"]
    types: dict[str, tuple[tuple[str, str], ...]] = {
        **_types(data["types"]),
        "EIP712Domain": tuple((n, t) for n, t in DOMAIN_FIELDS if n in domain),
    }
    canonical = {
        "types": {
            name: [{"name": field, "type": kind} for field, kind in fields]
            for name, fields in sorted(types.items())
        },
        "primaryType": message.primary_type,
        "domain": _struct(types, "EIP712Domain", domain, "domain"),
        "message": _struct(types, message.primary_type, data["message"], "message"),
    }
    if typed_data_digest(canonical).digest != message.digest:
        # Only a bug here could get this far; signing either spelling would then be a guess.
        raise CustodyError("canonical typed data hashes differently from the original", status=500)
    return canonical, message


def _struct(types: Types, name: str, value: Any, path: str) -> dict[str, Any]:
    return {
        field: _value(types, kind, value[field], f"{path}.{field}") for field, kind in types[name]
    }


def _value(types: Types, kind: str, value: Any, path: str) -> Any:
    array = _ARRAY.fullmatch(kind)
    if array is not None:
        return [_value(types, array[1], item, f"{path}[{i}]") for i, item in enumerate(value)]
    if kind in types:
        return _struct(types, kind, value, path)
    if kind == "string":
        return value
    atom = atomic_value(kind, value, path)
    if isinstance(atom, bytes):
        return "0x" + atom.hex()
    if isinstance(atom, bool | str):
        return atom
    return str(atom)
