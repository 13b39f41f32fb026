"""`custody config`: the sealed configuration the signer trusts (custody.seals)."""

from __future__ import annotations

from typing import Annotated

import typer

from custody.cli import context
from custody.cli.output import JsonOption, emit
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
