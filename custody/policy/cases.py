"""Table tests for policies: `custody policy test FILE --cases CASES.yaml`.

A case states request facts, optionally an evaluation context, and the decision (and rule) it
expects. Facts may give `calldata` instead of `method` and `flags`: then the real decoder derives
them, so a case tests decoder and policy together, as intake will run them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from custody.chains.evm.calldata import decode_calldata
from custody.errors import ValidationFailed
from custody.policy.case_models import CaseContext, CaseFacts, Expect
from custody.policy.context import EvaluationContext
from custody.policy.decision import Decision
from custody.policy.errors import Problem
from custody.policy.evaluator import evaluate
from custody.policy.facts import RequestFacts
from custody.policy.loader import LoadedPolicy, validation_problems
from custody.policy.yamlsource import MAX_POLICY_BYTES, parse_yaml


class CasesInvalid(ValidationFailed):
    """A cases file that does not load; reported as one line (the first problem and a count)."""

    title = "Invalid policy test cases"
    slug = "invalid-policy-cases"

    def __init__(self, problems: Sequence[Problem]) -> None:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}")
        self.problems = tuple(problems)


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    facts: dict[str, object] = Field(default_factory=dict)
    context: dict[str, object] = Field(default_factory=dict)
    expect: Expect


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    facts: dict[str, object] = Field(default_factory=dict)
    context: dict[str, object] = Field(default_factory=dict)


class CasesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: Defaults = Field(default_factory=Defaults)
    cases: list[Case] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    expected: Expect
    decision: Decision

    @property
    def passed(self) -> bool:
        return self.expected.accepts(self.decision)

    def to_dict(self) -> dict[str, object]:
        return {
            "case": self.name,
            "expected": self.expected.to_dict(),
            "got": self.decision.to_dict(),
            "passed": self.passed,
        }


@dataclass(frozen=True, slots=True)
class PreparedCase:
    name: str
    facts: RequestFacts
    context: EvaluationContext | None
    expect: Expect


def load_cases(path: str | PathLike[str]) -> list[PreparedCase]:
    source = str(path)
    try:
        text = Path(path).read_bytes()[: MAX_POLICY_BYTES + 1].decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CasesInvalid([Problem(source, None, "file", str(error))]) from None
    try:
        parsed = parse_yaml(text, source)
    except ValidationFailed as error:
        raise CasesInvalid([Problem(source, None, "yaml", error.message.splitlines()[0])]) from None
    try:
        model = CasesFile.model_validate(parsed.data)
        prepared = []
        for index, case in enumerate(model.cases):
            prepared.append(_prepare(index, case, model.defaults))
    except ValidationError as error:
        raise CasesInvalid(validation_problems(error, parsed.root, source)) from None
    return prepared


def _prepare(index: int, case: Case, defaults: Defaults) -> PreparedCase:
    facts = CaseFacts.model_validate_with_loc(
        {**defaults.facts, **case.facts}, ("cases", index, "facts")
    )
    raw_context = {**defaults.context, **case.context}
    context = (
        CaseContext.model_validate_with_loc(raw_context, ("cases", index, "context")).build(
            facts.chain
        )
        if raw_context
        else None
    )
    return PreparedCase(case.name, facts.build(decode_calldata), context, case.expect)


def run_cases(policy: LoadedPolicy, cases: Sequence[PreparedCase]) -> list[CaseResult]:
    return [
        CaseResult(case.name, case.expect, evaluate(policy, case.facts, case.context))
        for case in cases
    ]
