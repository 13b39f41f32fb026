"""`custody ceremony propose|approve|proposals`: ceremonies under the governance quorum.

    custody ceremony propose backup DIR --shares N --threshold M [--custodian NAME …]
    custody ceremony propose restore DIR [--token T]
    custody ceremony propose rotate-ledger-key [--reason TEXT]
    custody ceremony propose retire-key LABEL [--force-no-backup]
    custody ceremony approve ID --approver NAME --signature BASE64 [--reject]
    custody ceremony proposals

A proposal names exactly what the ceremony command will do; each approver of the governance
quorum signs its statement with their device key (custody.approvals.ceremony_approvals), and the
command, run later with the same arguments, finds it and uses it up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from custody.cli import context
from custody.cli.output import (
    ApproverOption,
    JsonOption,
    RejectOption,
    SignatureOption,
    emit,
    table,
)

if TYPE_CHECKING:
    from custody.store.models import CeremonyProposal

propose_app = typer.Typer(
    help="Propose a ceremony to the governance quorum (when the policy has governance).",
    no_args_is_help=True,
)

CustodianOption = Annotated[
    list[str] | None,
    typer.Option("--custodian", help="Who holds share 1, 2, … (once per share, in order)."),
]


@propose_app.command("backup")
def propose_backup(
    directory: Annotated[Path, typer.Argument(help="The folder the backup will write.")],
    shares: Annotated[int, typer.Option("--shares", help="N: how many shares (1-16).")],
    threshold: Annotated[
        int, typer.Option("--threshold", help="M: how many shares restore the keys.")
    ],
    custodian: CustodianOption = None,
    as_json: JsonOption = False,
) -> None:
    """Propose `custody ceremony backup` with exactly these arguments."""
    from custody.ceremonies.backup import Plan

    plan = Plan.make(
        directory.absolute(), shares=shares, threshold=threshold, custodians=list(custodian or [])
    )
    _propose("backup", plan.subject(), as_json=as_json)


@propose_app.command("restore")
def propose_restore(
    directory: Annotated[Path, typer.Argument(help="The backup folder to restore.")],
    token: Annotated[
        str | None,
        typer.Option("--token", help="The token, by name or label (default: the main one)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Propose `custody ceremony restore` of this backup folder into this installation."""
    from custody.ceremonies.manifest import open_folder
    from custody.ceremonies.restore import subject

    backup = open_folder(directory.absolute())
    from custody.runtime import resolve_token

    with context.runtime() as rt:
        label = resolve_token(rt.settings, token)
    _propose("restore", subject(backup, label), as_json=as_json)


@propose_app.command("rotate-ledger-key")
def propose_rotation(
    reason: Annotated[
        str, typer.Option("--reason", help="The reason `ledger rotate-key` will be given.")
    ] = "scheduled rotation",
    as_json: JsonOption = False,
) -> None:
    """Propose `custody ledger rotate-key --reason REASON` (replacing the current key)."""
    from custody.ceremonies.rotation import subject

    with context.runtime() as rt:
        named = subject(rt, reason)
    _propose("rotate-ledger-key", named, as_json=as_json)


@propose_app.command("retire-key")
def propose_retirement(
    label: Annotated[str, typer.Argument(help="The wallet key to retire.")],
    force_no_backup: Annotated[
        bool, typer.Option("--force-no-backup", help="As `keys retire` will be given it.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Propose `custody keys retire LABEL`."""
    from custody.ceremonies import retirement

    with context.runtime() as rt, rt.db.read() as session:
        plan = retirement.plan(session, label, force_no_backup=force_no_backup)
    _propose("retire-key", plan.subject(), as_json=as_json)


def _propose(kind: str, subject: dict[str, Any], *, as_json: bool) -> None:
    from custody.approvals import ceremony_approvals

    with context.runtime() as rt, rt.db.write() as session:
        row = ceremony_approvals.propose(session, kind, subject, context.operator())
        data = _view(row)
    template = json.dumps(data["statement"] | {"decision": "approve", "approver": "<name>"})
    needs = ", ".join(f"{q['count']} from {q['group']}" for q in data["required_approvals"])
    emit(
        data,
        as_json=as_json,
        human=f"ceremony proposal {row.id} ({kind}) waits for the governance quorum ({needs}).\n"
        f"Each approver signs with their device key the RFC 8785 JSON of {template}\n"
        f"and records it: custody ceremony approve {row.id} --approver NAME --signature BASE64",
    )


def approve(
    proposal: Annotated[int, typer.Argument(help="The proposal's id.")],
    approver: ApproverOption,
    signature: SignatureOption,
    reject: RejectOption = False,
    as_json: JsonOption = False,
) -> None:
    """Record an approver's device-key decision on a ceremony proposal."""
    from custody.approvals import ceremony_approvals

    with context.runtime() as rt:
        with rt.db.read() as session:
            verified = ceremony_approvals.verify_decision(
                session,
                proposal_id=proposal,
                approver_name=approver,
                decision="reject" if reject else "approve",
                signature=signature,
            )
        with rt.db.write() as session:
            decided = ceremony_approvals.record_decision(session, verified)
    quorum = decided.quorum
    data = {
        "proposal": decided.proposal_id,
        "state": decided.state,
        "quorum": quorum.view().model_dump(mode="json"),
    }
    human = (
        f"proposal {proposal} rejected by {approver}"
        if reject
        else f"proposal {proposal}: {quorum.counted} approval(s); quorum "
        + ("met: run the ceremony command now" if quorum.met else "not met yet")
    )
    emit(data, as_json=as_json, human=human)


def proposals(as_json: JsonOption = False) -> None:
    """Ceremony proposals, newest first (the last 50)."""
    from custody.approvals import repository

    with context.runtime() as rt, rt.db.read() as session:
        rows = [_view(row) for row in repository.recent_ceremony_proposals(session, 50)]
    table(
        rows
        if as_json
        else [r | {"subject": json.dumps(r["subject"], sort_keys=True)} for r in rows],
        ["id", "ceremony", "state", "proposed_by", "subject"],
        as_json=as_json,
        empty="no ceremony proposals",
    )


def _view(row: CeremonyProposal) -> dict[str, Any]:
    from custody.approvals.ceremony_approvals import statement_template

    return {
        "id": row.id,
        "ceremony": row.kind,
        "state": row.state,
        "subject": json.loads(row.subject),
        "subject_sha256": row.subject_sha256,
        "required_approvals": json.loads(row.required_approvals),
        "proposed_by": row.proposed_by,
        "statement": statement_template(row),
    }
