"""`custody policy`: validate and apply policy files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custody.cli import context
from custody.cli.output import JsonOption, emit, table
from custody.policy.loader import load_policy_file
from custody.policy.versions import active_policy, apply, versions

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
            data = {"version": current.version_id, "digest": loaded.digest, "changed": False}
        else:
            version = apply(session, loaded, source_name=file.name, actor=context.operator())
            data = {"version": version.id, "digest": loaded.digest, "changed": True}
    emit(
        data,
        as_json=as_json,
        human=(
            f"applied {file.name} as version {data['version']} (digest {loaded.digest})"
            if data["changed"]
            else f"{file.name} is already the active policy"
        ),
    )


@app.command("versions")
def list_versions(as_json: JsonOption = False) -> None:
    """Every applied policy version, newest last."""
    with context.runtime() as rt, rt.db.read() as session:
        rows = [
            {
                "version": v.id,
                "digest": v.digest,
                "source": v.source_name,
                "applied_by": v.applied_by,
                "applied_at": v.applied_at.isoformat(),
            }
            for v in versions(session)
        ]
    table(
        rows,
        ["version", "source", "digest", "applied_by", "applied_at"],
        as_json=as_json,
        empty="no policy applied: everything is denied until `custody policy apply FILE`",
    )
