"""What every JSON model custody reads or writes shares: frozen, no unknown keys, and keys that
are absent (rather than null) when there is nothing to say.

A key that today's JSON leaves out must stay out: clients tell "absent" from `null` (a `result`
appears only once a request is signed), so `absent()` fields are dropped from the output when
they hold None, and every other field is written even when it is null.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict


class JsonModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _is_none(value: object) -> bool:
    return value is None


def _never_null(schema: JsonDict) -> None:
    # The key is absent or holds a value, never null: say so, or generated clients expect null.
    options = schema.pop("anyOf", None)
    schema.pop("default", None)
    if isinstance(options, list):
        kept = [option for option in options if option != {"type": "null"}]
        if len(kept) == 1 and isinstance(kept[0], dict):
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept


def absent(description: str | None = None) -> Any:
    """A field that is left out of the JSON, not written as null, when it holds None."""
    return Field(
        default=None, exclude_if=_is_none, description=description, json_schema_extra=_never_null
    )


DecimalString = Annotated[
    str,
    Field(
        pattern=r"^(0|[1-9][0-9]*)$",
        description="base units as a decimal string (JSON numbers lose precision)",
        examples=["1000000000000000000"],
    ),
]
HexDigest = Annotated[
    str, Field(pattern=r"^0x[0-9a-f]{64}$", description="0x and 32 bytes of lower-case hex")
]
Rfc3339 = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
"""A UTC time as RFC 3339 text; kept as the exact string custody writes, not re-rendered."""
