"""The OpenAPI document: FastAPI's, plus the schemas FastAPI cannot see.

Routes that read raw bytes (the body's SHA-256 is bound into the client's token) declare their
body with `json_body(...)`; errors are declared with `problem_responses(...)`. Both refer to
component schemas by name, added here from the pydantic models that define them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from custody.approvals.schemas import ApprovalBody
from custody.freezes.schemas import FreezeBody
from custody.http.problems import Problem
from custody.intake.bodies import REQUEST_BODY

REF = "#/components/schemas/{model}"
# name -> (schema source, JSON Schema mode): bodies are read (validation), problems written.
_COMPONENTS: dict[str, tuple[TypeAdapter[Any], JsonSchemaMode]] = {
    "RequestBody": (REQUEST_BODY, "validation"),
    "ApprovalBody": (TypeAdapter(ApprovalBody), "validation"),
    "FreezeBody": (TypeAdapter(FreezeBody), "validation"),
    "Problem": (TypeAdapter(Problem), "serialization"),
}


def json_body(component: str, description: str) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its JSON body as raw bytes."""
    if component not in _COMPONENTS:
        raise KeyError(f"no component schema {component!r}")
    schema = {"$ref": REF.format(model=component)}
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }


def required_header(name: str, description: str, max_length: int) -> dict[str, Any]:
    """`openapi_extra` for a header the route checks itself (with its own error message), so
    FastAPI must not, and would otherwise document it as optional."""
    schema = {"type": "string", "maxLength": max_length}
    header = {"name": name, "in": "header", "required": True, "description": description}
    return {"parameters": [header | {"schema": schema}]}


def component_schemas() -> dict[str, dict[str, Any]]:
    schemas: dict[str, dict[str, Any]] = {}
    for name, (adapter, mode) in _COMPONENTS.items():
        schema = adapter.json_schema(ref_template=REF, mode=mode)
        for nested, definition in schema.pop("$defs", {}).items():
            _add(schemas, nested, definition)
        _add(schemas, name, schema)
    return schemas


def install(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()  # FastAPI caches it in app.openapi_schema; we extend that
            components = document.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in component_schemas().items():
                _add(components, name, schema)
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def _add(schemas: dict[str, dict[str, Any]], name: str, schema: dict[str, Any]) -> None:
    # Two different models with one name would make every $ref to it ambiguous.
    if schemas.setdefault(name, schema) != schema:
        raise RuntimeError(f"two different OpenAPI schemas are named {name}")
