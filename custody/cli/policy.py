"""`custody policy`: validate, test, diff and apply policy files.

`validate`, `test` and `diff` are pure: they read files and never open the database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from custody.cli import context
from custody.cli.output import JsonOption, emit, table
from custody.policy.cases import load_cases, run_cases
from custody.policy.diff import diff_policies
from custody.policy.loader import load_policy_file
from custody.policy_versions.service import active_policy, apply, versions

app = typer.Typer(help="Policies: who may sign what, and who must approve.", no_args_is_help=True)

PolicyFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]


@app.command("validate")
def validate(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False)],
    as_json: JsonOption = False,
) -> None:
    """Check policy files; every problem is named by file, line and key."""
    results = []
    for path in files:
        loaded = load_policy_file(path)
        results.append(
            {"file": str(path), "digest": loaded.digest, "rules": len(loaded.policy.rules)}
        )
    emit(
        results,
        as_json=as_json,
        human="\n".join(
            f"{r['file']}: valid, {r['rules']} rules, digest {r['digest']}" for r in results
        ),
    )


@app.command("apply")
def apply_policy(file: PolicyFile, as_json: JsonOption = False) -> None:
    """Make FILE the active policy (recorded in the ledger with its digest)."""
    loaded = load_policy_file(file)
    with context.runtime() as rt, rt.db.write() as session:
        current = active_policy(session)
        if current is not None and current.digest == loaded.digest:
            data: dict[str, Any] = {
                "version": current.version_id,
                "digest": loaded.digest,
                "changed": False,
            }
        else:
            version = apply(session, loaded, source_name=file.name, actor=context.operator())
            data = {
                "version": version.id,
                "digest": loaded.digest,
                "changed": True,
                "state": version.state,
            }
            if version.required_approvals:
                data["required_approvals"] = json.loads(version.required_approvals)
    if not data["changed"]:
        human = f"{file.name} is already the active policy"
    elif data.get("state") == "proposed":
        needs = ", ".join(f"{q['count']} from {q['group']}" for q in data["required_approvals"])
        human = (
            f"proposed {file.name} as version {data['version']} (digest {loaded.digest}); "
            f"it takes effect once approved by {needs}"
        )
    else:
        human = f"applied {file.name} as version {data['version']} (digest {loaded.digest})"
    emit(data, as_json=as_json, human=human)


@app.command("versions")
def list_versions(as_json: JsonOption = False) -> None:
    """Every applied policy version, newest last."""
    with context.runtime() as rt, rt.db.read() as session:
        rows = [
            {
                "version": v.id,
                "state": v.state,
                "digest": v.digest,
                "source": v.source_name,
                "applied_by": v.applied_by,
                "applied_at": v.applied_at.isoformat(),
            }
            for v in versions(session)
        ]
    table(
        rows,
        ["version", "state", "source", "digest", "applied_by", "applied_at"],
        as_json=as_json,
        empty="no policy applied: everything is denied until `custody policy apply FILE`",
    )


@app.command("test")
def run_tests(
    file: PolicyFile,
    cases: Annotated[
        Path, typer.Option("--cases", exists=True, dir_okay=False, help="YAML table of cases.")
    ],
    as_json: JsonOption = False,
) -> None:
    """Run table tests against FILE; exits 1 if any case gets another decision than expected.

    Pure: no database is opened, the policy is evaluated as written in FILE.
    """
    loaded = load_policy_file(file)
    results = run_cases(loaded, load_cases(cases))
    failed = [result for result in results if not result.passed]
    rows = [
        {
            "case": r.name,
            "expected": _expected(r.expected.to_dict()),
            "got": f"{r.decision.decision} ({r.decision.rule_id or 'default'})",
            "result": "pass" if r.passed else "FAIL",
        }
        for r in results
    ]
    if as_json:
        emit(
            {"policy": str(file), "digest": loaded.digest, "cases": [r.to_dict() for r in results]},
            as_json=True,
        )
    else:
        table(rows, ["case", "expected", "got", "result"], as_json=False)
        for result in failed:
            emit(None, as_json=False, human=f"FAIL {result.name}: {result.decision.reason}")
        emit(None, as_json=False, human=f"{len(results) - len(failed)} of {len(results)} passed")
    if failed:
        raise typer.Exit(1)


def _expected(expected: dict[str, object]) -> str:
    rule = expected.get("rule", "any rule")
    return f"{expected['decision']} ({'default' if rule is None else rule})"


@app.command("diff")
def diff(
    a: PolicyFile,
    b: PolicyFile,
    as_json: JsonOption = False,
) -> None:
    """What changed from policy A to policy B: rules, rule order, allowlist entries, limits."""
    result = diff_policies(load_policy_file(a), load_policy_file(b))
    emit(result.to_dict(), as_json=as_json, human="\n".join(result.lines()))
