"""A small JSON Schema checker for the subset OpenAPI 3.1 documents use, written for these tests.

It shares no code with pydantic, which produced the schemas: a response that validates here
matches what the document promises, not merely what the server's own models accept. Keywords it
does not know fail loudly instead of being skipped, so it can never pass by ignoring a rule.
"""

from __future__ import annotations

import re
from typing import Any

# Annotations and hints for generators: they constrain nothing.
_ANNOTATIONS = {"title", "description", "default", "examples", "format", "discriminator"}
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "null": (type(None),),
    "number": (int, float),
    "integer": (int,),
}


class SchemaMismatch(AssertionError):
    pass


class Document:
    def __init__(self, openapi: dict[str, Any]) -> None:
        self.openapi = openapi

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Follow `$ref` chains to the schema they name."""
        while "$ref" in schema:
            ref = schema["$ref"]
            assert ref.startswith("#/"), ref
            target: Any = self.openapi
            for part in ref[2:].split("/"):
                target = target[part]
            schema = target
        return schema

    def response_schema(self, path: str, method: str, status: int, media: str) -> dict[str, Any]:
        operation = self.openapi["paths"][path][method]
        response = operation["responses"][str(status)]
        return self.resolve(response["content"][media]["schema"])

    def validate(self, value: Any, schema: dict[str, Any], where: str = "$") -> None:
        if "$ref" in schema:
            self.validate(value, self.resolve(schema), where)
        for keyword, rule in schema.items():
            if keyword in _ANNOTATIONS or keyword == "$ref":
                continue
            check = getattr(self, f"_{keyword}", None)
            if check is None:
                raise SchemaMismatch(f"{where}: the checker does not know keyword {keyword!r}")
            check(value, rule, schema, where)

    # -- keywords --------------------------------------------------------------------------

    def _type(self, value: Any, rule: str | list[str], schema: Any, where: str) -> None:
        names = [rule] if isinstance(rule, str) else rule
        for name in names:
            if isinstance(value, _TYPES[name]) and not (
                isinstance(value, bool) and name in ("integer", "number")
            ):
                return
        raise SchemaMismatch(f"{where}: {value!r} is not of type {rule}")

    def _properties(self, value: Any, rule: dict[str, Any], schema: Any, where: str) -> None:
        if isinstance(value, dict):
            for name, sub in rule.items():
                if name in value:
                    self.validate(value[name], sub, f"{where}.{name}")

    def _required(self, value: Any, rule: list[str], schema: Any, where: str) -> None:
        if isinstance(value, dict):
            missing = [name for name in rule if name not in value]
            if missing:
                raise SchemaMismatch(f"{where}: missing {missing}")

    def _additionalProperties(self, value: Any, rule: Any, schema: Any, where: str) -> None:
        if not isinstance(value, dict):
            return
        extra = [k for k in value if k not in schema.get("properties", {})]
        for name in extra:
            if rule is False:
                raise SchemaMismatch(f"{where}: unexpected key {name!r}")
            if isinstance(rule, dict):
                self.validate(value[name], rule, f"{where}.{name}")

    def _items(self, value: Any, rule: dict[str, Any], schema: Any, where: str) -> None:
        if isinstance(value, list):
            for index, item in enumerate(value):
                self.validate(item, rule, f"{where}[{index}]")

    def _enum(self, value: Any, rule: list[Any], schema: Any, where: str) -> None:
        if value not in rule:
            raise SchemaMismatch(f"{where}: {value!r} not in {rule}")

    def _const(self, value: Any, rule: Any, schema: Any, where: str) -> None:
        if value != rule:
            raise SchemaMismatch(f"{where}: {value!r} is not {rule!r}")

    def _pattern(self, value: Any, rule: str, schema: Any, where: str) -> None:
        if isinstance(value, str) and re.search(rule, value) is None:
            raise SchemaMismatch(f"{where}: {value!r} does not match {rule}")

    def _maxLength(self, value: Any, rule: int, schema: Any, where: str) -> None:
        if isinstance(value, str) and len(value) > rule:
            raise SchemaMismatch(f"{where}: longer than {rule}")

    def _minLength(self, value: Any, rule: int, schema: Any, where: str) -> None:
        if isinstance(value, str) and len(value) < rule:
            raise SchemaMismatch(f"{where}: shorter than {rule}")

    def _minimum(self, value: Any, rule: int, schema: Any, where: str) -> None:
        if isinstance(value, int | float) and value < rule:
            raise SchemaMismatch(f"{where}: {value} < {rule}")

    def _maximum(self, value: Any, rule: int, schema: Any, where: str) -> None:
        if isinstance(value, int | float) and value > rule:
            raise SchemaMismatch(f"{where}: {value} > {rule}")

    def _anyOf(self, value: Any, rule: list[Any], schema: Any, where: str) -> None:
        if self._matches(value, rule, where) < 1:
            raise SchemaMismatch(f"{where}: matches none of anyOf")

    def _oneOf(self, value: Any, rule: list[Any], schema: Any, where: str) -> None:
        count = self._matches(value, rule, where)
        if count != 1:
            raise SchemaMismatch(f"{where}: matches {count} of oneOf, not exactly one")

    def _allOf(self, value: Any, rule: list[Any], schema: Any, where: str) -> None:
        for sub in rule:
            self.validate(value, sub, where)

    def _matches(self, value: Any, options: list[Any], where: str) -> int:
        count = 0
        for option in options:
            try:
                self.validate(value, option, where)
            except SchemaMismatch as mismatch:
                if "does not know keyword" in str(mismatch):
                    raise
            else:
                count += 1
        return count
