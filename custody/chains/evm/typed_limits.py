"""Caps on what EIP-712 typed data may contain, checked before any parsing or hashing.

Hashing typed data costs more than reading it: every struct value hashes its type's encoding,
which spells out every type it depends on, so a 55 KB body made of a long chain of types and
thousands of small values cost seconds of CPU. The caps sit far above real orders (a CoW
Protocol order is 1 type of 12 fields; a Seaport order 3 types, 3 levels deep, tens of items)
and bound the worst case to tens of milliseconds (bench/typed_data.py): each struct value costs
two Keccak calls and an ABI encoding whatever its size, hence the cap on values. They are
documented in docs/policies.md.
"""

from __future__ import annotations

from collections.abc import Mapping

from custody.chains.errors import InvalidPayload

MAX_TYPES = 32
"""Struct types besides EIP712Domain."""
MAX_FIELDS = 64
"""Fields of one struct type."""
MAX_NAME_LENGTH = 64
"""Characters of a type or field name."""
MAX_TYPE_LENGTH = 128
"""Characters of a field's type, array brackets included (`Item[3][]`)."""
MAX_DEPTH = 8
"""Objects and arrays nested in the domain or the message, counting the message itself."""
MAX_ARRAY_LENGTH = 256
"""Items of one array."""
MAX_VALUES = 1024
"""Objects, arrays and values in the domain and the message together."""
MAX_ENCODED_BYTES = 128 * 1024
"""Bytes the hashing reads: each struct value's type encoding and 32 bytes per field, each
array's 32 bytes per item, each string's and byte string's length."""


class TypedDataTooLarge(InvalidPayload):
    title = "Typed data too large"
    slug = "typed-data-too-large"


def check_limits(data: object) -> None:
    """Refuse typed data past a cap, reading each JSON node at most once and nothing past a cap.

    Anything that is not the expected shape is left to the validation that follows.
    """
    if not isinstance(data, Mapping):
        return
    types = data.get("types")
    if isinstance(types, Mapping):
        _check_types(types)
    budget = MAX_VALUES
    for part in ("domain", "message"):
        budget = _check_values(data.get(part), part, budget)


def _check_types(types: Mapping[object, object]) -> None:
    structs = len(types) - ("EIP712Domain" in types)
    if structs > MAX_TYPES:
        raise TypedDataTooLarge(f"typed data declares {structs} types; at most {MAX_TYPES}")
    for name, fields in types.items():
        if isinstance(fields, list) and len(fields) > MAX_FIELDS:
            raise TypedDataTooLarge(
                f"type {short(name)} has {len(fields)} fields; at most {MAX_FIELDS}"
            )


def _check_values(root: object, part: str, budget: int) -> int:
    """Walk without recursion (a deep body must not reach Python's recursion limit first)."""
    stack: list[tuple[object, int]] = [(root, 1)]
    budget -= 1
    while stack:
        node, depth = stack.pop()
        if isinstance(node, Mapping):
            children = list(node.values())
        elif isinstance(node, list):
            if len(node) > MAX_ARRAY_LENGTH:
                raise TypedDataTooLarge(
                    f"an array in typed data {part} has {len(node)} items; "
                    f"at most {MAX_ARRAY_LENGTH}"
                )
            children = node
        else:
            continue
        if depth > MAX_DEPTH:
            raise TypedDataTooLarge(f"typed data {part} nests deeper than {MAX_DEPTH} levels")
        budget -= len(children)
        if budget < 0:
            raise TypedDataTooLarge(
                f"typed data domain and message hold more than {MAX_VALUES} values"
            )
        stack.extend((child, depth + 1) for child in children)
    if budget < 0:
        raise TypedDataTooLarge(f"typed data domain and message hold more than {MAX_VALUES} values")
    return budget


def short(name: object) -> str:
    """A name as an error may quote it: a hostile body's 60 KB name is not echoed back."""
    text = name if isinstance(name, str) else repr(name)
    return repr(text if len(text) <= MAX_NAME_LENGTH else text[:MAX_NAME_LENGTH] + "…")
