"""EIP-712 struct types: parsed and checked before any value is read.

Every field's type must be an atomic type or a declared struct, with array suffixes of at most
`MAX_ARRAY_LENGTH` items, so no value can meet a type nobody declared (EIP-712 implementations
disagree on those). A struct may not take an atomic type's name: one implementation would then
hash a struct where another hashes a number.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from custody.chains.errors import InvalidPayload
from custody.chains.evm.typed_limits import (
    MAX_ARRAY_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TYPE_LENGTH,
    TypedDataTooLarge,
    short,
)

Fields = tuple[tuple[str, str], ...]
Types = Mapping[str, Fields]

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
_SUFFIXES = re.compile(r"(?:\[(?:0|[1-9][0-9]{0,2})?\])*")
_INT = re.compile(r"u?int([0-9]{1,3})")
_FIXED_BYTES = re.compile(r"bytes([0-9]{1,2})")


def is_atomic(kind: str) -> bool:
    if kind in ("address", "bool", "string", "bytes"):
        return True
    integer = _INT.fullmatch(kind)
    if integer is not None:
        bits = int(integer[1])
        return bits % 8 == 0 and 8 <= bits <= 256 and not integer[1].startswith("0")
    fixed = _FIXED_BYTES.fullmatch(kind)
    return fixed is not None and 1 <= int(fixed[1]) <= 32 and not fixed[1].startswith("0")


def _reserved(name: str) -> bool:
    # `uint` and `int` are aliases in Solidity and in some EIP-712 libraries' lists of atoms.
    return is_atomic(name) or name in ("uint", "int") or _INT.fullmatch(name) is not None


def parse_types(raw: object) -> dict[str, Fields]:
    if not isinstance(raw, Mapping):
        raise InvalidPayload("typed data types must be an object")
    types: dict[str, Fields] = {}
    for name, fields in raw.items():
        if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
            raise InvalidPayload(f"type name {short(name)} is not an identifier")
        if len(name) > MAX_NAME_LENGTH:
            raise TypedDataTooLarge(f"type name {short(name)} is longer than {MAX_NAME_LENGTH}")
        if _reserved(name):
            raise InvalidPayload(f"type name {name} is an atomic type's name")
        if not isinstance(fields, list) or not all(_is_field(f) for f in fields):
            raise InvalidPayload(f"type {name} must be a list of {{name, type}} fields")
        pairs = tuple((f["name"], f["type"]) for f in fields)
        if len({field_name for field_name, _ in pairs}) != len(pairs):
            raise InvalidPayload(f"type {name} has a field twice")
        if any(len(field_name) > MAX_NAME_LENGTH for field_name, _ in pairs):
            raise TypedDataTooLarge(f"type {name} has a field name longer than {MAX_NAME_LENGTH}")
        types[name] = pairs
    for name, fields in types.items():
        for field, kind in fields:
            _check_kind(types, kind, f"types.{name}.{field}")
    return types


def _is_field(item: object) -> bool:
    return (
        isinstance(item, Mapping)
        and set(item) == {"name", "type"}
        and all(isinstance(item[key], str) for key in ("name", "type"))
        and _IDENTIFIER.fullmatch(item["name"]) is not None
    )


def _check_kind(types: Types, kind: str, path: str) -> None:
    if len(kind) > MAX_TYPE_LENGTH:
        raise TypedDataTooLarge(f"{path}: type {short(kind)} is longer than {MAX_TYPE_LENGTH}")
    base, _, suffix = kind.partition("[")
    suffix = "[" + suffix if suffix else ""
    if not _SUFFIXES.fullmatch(suffix):
        raise InvalidPayload(f"{path}: unknown type {kind}")
    if any(length and int(length) > MAX_ARRAY_LENGTH for length in _lengths(suffix)):
        raise TypedDataTooLarge(f"{path}: {kind} is longer than {MAX_ARRAY_LENGTH} items")
    if "[0]" in suffix:
        raise InvalidPayload(f"{path}: {kind} is an array of no items")
    if base not in types and not is_atomic(base):
        raise InvalidPayload(f"{path}: unknown type {base}")


def _lengths(suffix: str) -> list[str]:
    return [part.rstrip("]") for part in suffix.split("[")[1:]]


def split_array(kind: str) -> tuple[str, int | None] | None:
    """`Item[3][]` -> ("Item[3]", None); `Item[3]` -> ("Item", 3); None for a non-array."""
    if not kind.endswith("]"):
        return None
    start = kind.rindex("[")
    length = kind[start + 1 : -1]
    return kind[:start], int(length) if length else None


def encode_type(types: Types, primary: str) -> str:
    """`Mail(Person from,Person to,string contents)Person(string name,address wallet)`."""
    deps = sorted(dependencies(types, primary) - {primary})
    return "".join(
        f"{name}({','.join(f'{kind} {field}' for field, kind in types[name])})"
        for name in [primary, *deps]
    )


def dependencies(types: Types, primary: str) -> set[str]:
    """`primary` and every struct type it uses, however indirectly (cycles allowed)."""
    found: set[str] = set()
    pending = [primary]
    while pending:
        name = pending.pop()
        if name in found or name not in types:
            continue
        found.add(name)
        pending.extend(kind.partition("[")[0] for _, kind in types[name])
    return found
