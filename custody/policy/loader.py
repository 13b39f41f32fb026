"""Loading policy files: YAML to validated, digested, compiled policy, or one line per problem."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import rfc8785
from pydantic import ValidationError
from yaml.nodes import Node

from custody.policy.compiled import CompiledPolicy, compile_policy
from custody.policy.errors import PolicyInvalid, Problem
from custody.policy.schema import STORED, Policy
from custody.policy.yamlsource import MAX_POLICY_BYTES, line_of, parse_yaml

# pydantic's wording for the two commonest mistakes, said the way a YAML author thinks of them.
_FRIENDLIER = {"missing": "missing required key", "extra_forbidden": "unknown key"}


@dataclass(frozen=True)
class LoadedPolicy:
    """A policy ready to evaluate, with the digest that names it in approvals and the ledger.

    Digest and compiled rules are derived here rather than passed in, so no LoadedPolicy can carry
    a digest of another policy or rules that disagree with it.
    """

    policy: Policy
    source_text: str
    source: str
    digest: str = field(init=False)
    compiled: CompiledPolicy = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", policy_digest(self.policy))
        object.__setattr__(self, "compiled", compile_policy(self.policy))


def policy_digest(policy: Policy) -> str:
    """Hex SHA-256 of the RFC 8785 form of the policy's data: layout and comments do not count."""
    data = policy.model_dump(mode="json", exclude_none=True)
    return hashlib.sha256(bytes(rfc8785.dumps(data))).hexdigest()


def load_policy_text(text: str, source: str) -> LoadedPolicy:
    return _load(text, source, stored=False)


def load_stored_policy_text(text: str, source: str) -> LoadedPolicy:
    """A version applied earlier, read under the rules it was applied with: a check added to the
    language since (amount bounds naming their asset) must not make history unreadable. What
    such a check refuses in a new file denies when evaluated (`units.UnnamedAssetBound`)."""
    return _load(text, source, stored=True)


def _load(text: str, source: str, *, stored: bool) -> LoadedPolicy:
    parsed = parse_yaml(text, source)
    try:
        policy = Policy.model_validate(parsed.data, context={STORED: stored})
    except ValidationError as error:
        raise PolicyInvalid(validation_problems(error, parsed.root, source)) from None
    return LoadedPolicy(policy=policy, source_text=text, source=source)


def load_policy_file(path: str | PathLike[str]) -> LoadedPolicy:
    source = str(path)
    try:
        with Path(path).open("rb") as file:
            # Read one byte past the limit so an oversized file is refused without reading it all.
            raw = file.read(MAX_POLICY_BYTES + 1)
        if len(raw) > MAX_POLICY_BYTES:
            raise PolicyInvalid([Problem(source, None, "file", "larger than 1 MiB")])
        text = raw.decode("utf-8")
    except OSError as error:
        raise PolicyInvalid([Problem(source, None, "file", error.strerror or str(error))]) from None
    except UnicodeDecodeError:
        raise PolicyInvalid([Problem(source, None, "file", "not UTF-8 text")]) from None
    return load_policy_text(text, source)


def validation_problems(error: ValidationError, root: Node, source: str) -> list[Problem]:
    """Each pydantic error as a located Problem (also used for `policy test` case files)."""
    problems: list[Problem] = []
    for detail in error.errors(include_url=False, include_input=False):
        located = detail.get("ctx", {}).get("problems")
        if detail["type"] == "policy_references" and located is not None:
            problems.extend(_problem(source, root, loc, message) for loc, message in located)
        else:
            message = _FRIENDLIER.get(detail["type"], detail["msg"])
            problems.append(_problem(source, root, detail["loc"], message))
    return sorted(problems, key=lambda problem: problem.line or 0)


def _problem(source: str, root: Node, loc: Sequence[str | int], message: str) -> Problem:
    return Problem(source, line_of(root, loc), format_loc(loc), message)


def format_loc(loc: Sequence[str | int]) -> str:
    """`("rules", 3, "match", "amount_lte")` as `rules[3].match.amount_lte`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "[key]":
            path += f".{part}" if path else part
    return path or "policy"
