"""Errors of the policy domain.

A policy file is written by a person and read by the CLI and the API, so its problems are reported
all at once, one line each, pointing at the file and line an editor can jump to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from custody.errors import ValidationFailed


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a policy file, located as precisely as the YAML allows."""

    source: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        # One problem, one line: a message from a library may span several.
        return f"{where}: {self.path}: {' '.join(self.message.split())}"


class PolicyInvalid(ValidationFailed):
    """A policy file that does not load; nothing of it is used."""

    title = "Invalid policy"
    slug = "invalid-policy"

    def __init__(self, problems: Sequence[Problem]) -> None:
        if not problems:
            # An invalid policy without a stated reason would be undiagnosable.
            raise ValueError("PolicyInvalid needs at least one problem")
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))
