"""Names operators give things (wallets, clients, approvers, venues, chains): one rule."""

from __future__ import annotations

import re

from custody.errors import ValidationFailed

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
CHAIN_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class InvalidName(ValidationFailed):
    slug = "invalid-name"


def validate_name(kind: str, name: str, pattern: re.Pattern[str] = NAME_PATTERN) -> str:
    if not pattern.fullmatch(name):
        rule = (
            "lower-case letters, digits, '.', '_' or '-', starting with a letter or digit, "
            "at most 64 characters"
            if pattern is NAME_PATTERN
            else "lower-case letters, digits or '-', starting with a letter, at most 32 characters"
        )
        raise InvalidName(f"{kind} name {name!r} must be {rule}")
    return name
