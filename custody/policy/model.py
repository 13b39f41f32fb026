"""The base of every policy file model: frozen, no unknown keys, no nulls."""

from __future__ import annotations

from typing import Annotated, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator
from pydantic_core import PydanticCustomError

from custody.policy.values import Glob, Name

_T = TypeVar("_T")


class PolicyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_null(cls, value: object) -> object:
        # `amount_lte:` with its value forgotten is null in YAML; treating it as "no condition"
        # would quietly widen the rule, so an optional key is either given a value or left out.
        if value is None:
            raise PydanticCustomError("null", "empty value (leave the key out instead)")
        return value


def non_empty(items: tuple[_T, ...]) -> tuple[_T, ...]:
    # An empty list would silently match nothing (or, negated, everything).
    if not items:
        raise PydanticCustomError("empty", "must not be empty")
    return items


def distinct(items: tuple[_T, ...]) -> tuple[_T, ...]:
    seen: set[_T] = set()
    for item in items:
        if item in seen:
            raise PydanticCustomError("duplicate", "{item} is listed twice", {"item": str(item)})
        seen.add(item)
    return items


Names = Annotated[tuple[Name, ...], AfterValidator(non_empty)]
Globs = Annotated[tuple[Glob, ...], AfterValidator(non_empty)]
