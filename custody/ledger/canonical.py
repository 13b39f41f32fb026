"""RFC 8785 canonical JSON, refusing floats: amounts are decimal strings everywhere."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import rfc8785

from custody.errors import CustodyError


class NotCanonicalisable(CustodyError):
    status = 500
    title = "Ledger entry invalid"
    slug = "ledger-entry-invalid"


def canonical_bytes(value: Any) -> bytes:
    """The exact bytes that get hashed; a float anywhere is a programming error, fail closed."""
    _refuse_floats(value, "$")
    return bytes(rfc8785.dumps(value))


def _refuse_floats(value: Any, path: str) -> None:
    if isinstance(value, float):
        raise NotCanonicalisable(f"float at {path}: ledger values must be integers or strings")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotCanonicalisable(f"non-string key at {path}")
            _refuse_floats(item, f"{path}.{key}")
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        for i, item in enumerate(value):
            _refuse_floats(item, f"{path}[{i}]")
