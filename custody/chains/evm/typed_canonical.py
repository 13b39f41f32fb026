"""One spelling for one EIP-712 message: what is stored, shown to approvers and signed.

Clients may write an integer as a JSON number, a decimal or a hex string, and an address in
either case; all hash the same. The stored form spells each value one way (integers as decimal
strings, so no JSON number can lose precision in the ledger; addresses EIP-55; bytes lower-case
hex) and lists `EIP712Domain` explicitly, so any EIP-712 implementation can re-hash it.

The walk reads every value once, and counts what hashing the result will read
(`MAX_ENCODED_BYTES`), so a message that would be costly to hash is refused before it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from custody.chains.errors import InvalidPayload
from custody.chains.evm.typed_atoms import atomic_value
from custody.chains.evm.typed_limits import MAX_ENCODED_BYTES, TypedDataTooLarge
from custody.chains.evm.typed_types import Types, encode_type, split_array

_WORD = 32


class CanonicalWalk:
    """Validates values against `types` and spells them canonically, within the hashing budget."""

    def __init__(self, types: Types) -> None:
        self.types = types
        self.budget = MAX_ENCODED_BYTES
        self._type_lengths: dict[str, int] = {}

    def struct(self, name: str, value: object, path: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise InvalidPayload(f"{path} must be an object of type {name}")
        fields = self.types[name]
        expected = {field for field, _ in fields}
        if set(value) != expected:
            extra, absent = sorted(set(value) - expected), sorted(expected - set(value))
            raise InvalidPayload(f"{path} ({name}): unexpected {extra}, missing {absent}")
        # hashStruct reads the type's encoding (all its dependencies) and one word per field.
        self._spend(self._type_length(name) + _WORD * (len(fields) + 1))
        return {field: self.value(kind, value[field], f"{path}.{field}") for field, kind in fields}

    def value(self, kind: str, value: object, path: str) -> Any:
        array = split_array(kind)
        if array is not None:
            item_kind, length = array
            if not isinstance(value, list) or (length is not None and len(value) != length):
                raise InvalidPayload(f"{path} must be a list for {kind}")
            self._spend(_WORD * len(value))
            return [self.value(item_kind, item, f"{path}[{i}]") for i, item in enumerate(value)]
        if kind in self.types:
            return self.struct(kind, value, path)
        if kind == "string":
            return self._string(value, path)
        atom = atomic_value(kind, value, path)
        if isinstance(atom, bytes):
            self._spend(len(atom))
            return "0x" + atom.hex()
        if isinstance(atom, bool | str):
            return atom
        return str(atom)

    def _string(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            raise InvalidPayload(f"{path} must be a string")
        try:
            # A lone surrogate (legal in JSON text) has no UTF-8 form to hash.
            self._spend(len(value.encode("utf-8")))
        except UnicodeEncodeError:
            raise InvalidPayload(f"{path} is not valid Unicode text") from None
        return value

    def _type_length(self, name: str) -> int:
        if name not in self._type_lengths:
            self._type_lengths[name] = len(encode_type(self.types, name).encode())
        return self._type_lengths[name]

    def _spend(self, cost: int) -> None:
        self.budget -= cost
        if self.budget < 0:
            raise TypedDataTooLarge(
                f"hashing this typed data would read more than {MAX_ENCODED_BYTES} bytes"
            )
