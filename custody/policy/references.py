"""Checks that span the whole policy: unique ids and allowlist names that resolve.

They return every problem with its own location instead of raising at the first, so a person
fixing a file sees all dangling references at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

# The shapes these checks read, so that this module needs nothing from custody.policy.schema
# (which calls it from its validator): structural types instead of an import cycle.


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


class _Rule(_Identified, Protocol):
    @property
    def match(self) -> object: ...


class _Policy(Protocol):
    @property
    def rules(self) -> Sequence[_Rule]: ...

    @property
    def limits(self) -> Sequence[_Identified]: ...

    @property
    def allowlists(self) -> Mapping[str, object]: ...


Loc = tuple[str | int, ...]
LocatedProblem = tuple[Loc, str]

ALLOWLIST_KEYS = ("destination_in", "destination_not_in", "receiver_in")


def reference_problems(policy: _Policy) -> list[LocatedProblem]:
    return [
        *_duplicate_ids("rules", (rule.id for rule in policy.rules)),
        *_duplicate_ids("limits", (limit.id for limit in policy.limits)),
        *_unknown_allowlists(policy),
    ]


def _duplicate_ids(section: str, ids: Iterable[str]) -> list[LocatedProblem]:
    first_seen: dict[str, int] = {}
    problems: list[LocatedProblem] = []
    for index, ident in enumerate(ids):
        if ident in first_seen:
            message = f"duplicate id {ident!r} (first used by {section}[{first_seen[ident]}])"
            problems.append(((section, index, "id"), message))
        else:
            first_seen[ident] = index
    return problems


def _unknown_allowlists(policy: _Policy) -> list[LocatedProblem]:
    problems: list[LocatedProblem] = []
    for index, rule in enumerate(policy.rules):
        for key in ALLOWLIST_KEYS:
            names: tuple[str, ...] = getattr(rule.match, key) or ()
            for position, name in enumerate(names):
                if name not in policy.allowlists:
                    loc: Loc = ("rules", index, "match", key, position)
                    problems.append((loc, f"unknown allowlist {name!r}"))
    return problems
