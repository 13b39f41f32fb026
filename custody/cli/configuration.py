"""`custody config`: the sealed configuration the signer trusts (custody.seals)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from custody.cli import context
from custody.cli.output import ApproverOption, JsonOption, RejectOption, SignatureOption, emit
from custody.errors import ValidationFailed
from custody.seals import repository as seals
from custody.seals.service import RootKey, seal, verify

app = typer.Typer(
    help="The configuration seal: what the signer trusts, signed by the root key in the HSM.",
    no_args_is_help=True,
)


@app.command("verify")
def verify_command(as_json: JsonOption = False) -> None:
    """Check that the configuration rows are the newest seal (what the signer checks)."""
    with context.runtime() as rt:
        label = rt.settings.root_key_label
        root = RootKey.on(rt.token(), label)
        with rt.db.read() as session:
            verify(session, root)
            newest = seals.newest_seal(session)
            assert newest is not None
            answer = {
                "epoch": newest.epoch,
                "digest": newest.digest,
                "sealed_at": newest.sealed_at.isoformat(),
                "sealed_by": newest.actor,
                "root_key": label,
            }
    emit(
        answer,
        as_json=as_json,
        human=(
            f"configuration matches seal {answer['epoch']} ({str(answer['digest'])[:16]}…), "
            f"sealed by {answer['sealed_by']} with root key {label!r}"
        ),
    )


@app.command("seal")
def seal_command(
    reason: Annotated[
        str, typer.Option("--reason", help="Why the configuration is sealed as it stands.")
    ],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Seal even though the ledger records newer seals than the table holds.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Seal the configuration as the rows say it is now (after an upgrade or an investigation).

    Every change made through custody is sealed as it commits; this is for the rest. Whoever
    runs it vouches for every row: review `custody config verify`'s differences first.
    """
    if not reason.strip():
        raise ValidationFailed("--reason must say why the configuration is sealed")
    with context.runtime() as rt, rt.db.write() as session:
        sealed = seal(
            session,
            rt.token(),
            key_label=rt.settings.root_key_label,
            actor=context.operator(),
            reason=reason.strip(),
            force=force,
        )
        newest = seals.newest_seal(session)
    if sealed is None:
        epoch = None if newest is None else newest.epoch
        emit(
            {"sealed": False, "epoch": epoch},
            as_json=as_json,
            human=f"nothing to seal: the configuration already matches seal {epoch}",
        )
        return
    listed = "\n".join(f"  {change}" for change in sealed.changes[:50])
    emit(
        {"sealed": True, "epoch": sealed.epoch, "digest": sealed.digest, "changes": sealed.changes},
        as_json=as_json,
        human=f"sealed the configuration as seal {sealed.epoch}:\n{listed}",
    )


@app.command("pending")
def pending_command(as_json: JsonOption = False) -> None:
    """Under governance: the seal in effect, and newer ones waiting for the quorum."""
    from custody.approvals.configuration_approvals import effective, statement_template

    with context.runtime() as rt:
        root = RootKey.on(rt.token(), rt.settings.root_key_label)
        with rt.db.read() as session:
            newest = seals.newest_seal(session)
            if newest is None:
                raise ValidationFailed("the configuration has never been sealed: run custody init")
            found = effective(session, root, newest)
    waiting: list[dict[str, Any]] = [
        {
            "epoch": p.epoch,
            "digest": p.digest,
            "needs_quorum": p.needs_quorum,
            "quorum": p.quorum.view().model_dump(mode="json"),
            "rejected_by": list(p.rejected_by),
            "statement": statement_template(p.epoch, p.digest),
        }
        for p in found.pending
    ]
    answer = {"in_effect": found.epoch, "newest": newest.epoch, "pending": waiting}
    lines = [f"seal {found.epoch} is in effect; the newest is {newest.epoch}"]
    if len(waiting) > 1:
        lines.append(
            f"approving seal {newest.epoch} brings in every waiting seal before it (each "
            "seal is the whole configuration)"
        )
    for item in waiting:
        rejected = f"; rejected by {', '.join(item['rejected_by'])}" if item["rejected_by"] else ""
        lines.append(f"seal {item['epoch']} waits for the governance quorum{rejected}:")
        lines += [f"  {change}" for change in item["needs_quorum"][:50]]
        template = json.dumps(item["statement"] | {"decision": "approve", "approver": "<name>"})
        lines.append(f"  approvers sign the RFC 8785 JSON of {template}")
        lines.append(
            f"  and record it: custody config approve {item['epoch']} --approver NAME "
            "--signature BASE64"
        )
    emit(answer, as_json=as_json, human="\n".join(lines))


@app.command("approve")
def approve_command(
    epoch: Annotated[int, typer.Argument(help="The configuration seal's epoch.")],
    approver: ApproverOption,
    signature: SignatureOption,
    reject: RejectOption = False,
    as_json: JsonOption = False,
) -> None:
    """Record a governance approver's device-key decision on a configuration seal."""
    from custody.approvals import configuration_approvals

    with context.runtime() as rt:
        with rt.db.read() as session:
            verified = configuration_approvals.verify_decision(
                session,
                epoch=epoch,
                approver_name=approver,
                decision="reject" if reject else "approve",
                signature=signature,
            )
        with rt.db.write() as session:
            recorded = configuration_approvals.record_decision(session, verified)
        rt.notify_signer()
        root = RootKey.on(rt.token(), rt.settings.root_key_label)
        with rt.db.read() as session:
            newest = seals.newest_seal(session)
            assert newest is not None
            found = configuration_approvals.effective(session, root, newest)
    data = {
        "epoch": recorded.epoch,
        "approver": recorded.approver,
        "decision": recorded.decision,
        "in_effect": found.epoch,
    }
    state = (
        "in effect"
        if found.epoch >= epoch
        else "still waiting for the quorum (custody config pending)"
    )
    emit(
        data,
        as_json=as_json,
        human=f"{recorded.approver} {'rejected' if reject else 'approved'} seal {epoch}; "
        f"it is {state}",
    )
