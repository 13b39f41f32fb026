"""Jinja2 templates (autoescaped) and the context every page gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from custody.web.detail import when
from custody.web.sessions import SignedIn

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
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
