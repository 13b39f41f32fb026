"""Registering one more token in `custody.toml` (`custody hsm add-token`), as an operator would
by hand: a `[tokens."NAME"]` table appended at the end, so nothing already in the file moves."""

from __future__ import annotations

import json
from pathlib import Path

from custody.errors import AlreadyExists
from custody.settings.config import Settings


def register_token(settings: Settings, name: str, *, label: str, pin_file: Path) -> Path:
    """Append `[tokens."NAME"]` to the installation's custody.toml; `pin_file` is written
    relative to CUSTODY_HOME when it lies inside it (the home may move)."""
    if name in settings.tokens or label in [settings.main_token_label]:
        raise AlreadyExists(f"token {name!r} is configured already")
    path = settings.config_path
    try:
        where = pin_file.relative_to(settings.home)
    except ValueError:
        where = pin_file
    # JSON strings are valid TOML basic strings: quotes and backslashes escaped alike.
    table = (
        f"\n[tokens.{json.dumps(name)}]\n"
        f"label = {json.dumps(label)}\n"
        f"pin_file = {json.dumps(str(where))}\n"
    )
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if text and not text.endswith("\n"):
        text += "\n"
    path.write_text(text + table, encoding="utf-8")
    return path
