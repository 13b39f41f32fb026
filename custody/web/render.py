"""Jinja2 templates (autoescaped) and the context every page gets."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape

from custody.web.detail import when
from custody.web.sessions import SignedIn

# Loaded as package data, so an installed wheel serves the pages it ships with.
environment = Environment(
    loader=PackageLoader("custody.web", "templates"), autoescape=select_autoescape()
)
templates = Jinja2Templates(env=environment)
templates.env.filters["when"] = when


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    user: SignedIn | None,
    status_code: int = 200,
) -> HTMLResponse:
    return templates.TemplateResponse(
        request, name, {"user": user, **context}, status_code=status_code
    )
