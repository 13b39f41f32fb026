"""What every JSON model custody reads or writes shares: frozen, no unknown keys, and keys that
are absent (rather than null) when there is nothing to say.

A key that today's JSON leaves out must stay out: clients tell "absent" from `null` (a `result`
appears only once a request is signed), so `absent()` fields are dropped from the output when
they hold None, and every other field is written even when it is null.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class JsonModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _is_none(value: object) -> bool:
    return value is None


def absent(description: str | None = None) -> Any:
    """A field that is left out of the JSON, not written as null, when it holds None."""
    return Field(default=None, exclude_if=_is_none, description=description)
