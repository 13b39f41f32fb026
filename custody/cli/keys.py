"""`custody keys`: generate keys inside the HSM and list them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from custody.cli import context, quorum
from custody.cli.output import JsonOption, console, emit, table
from custody.hsm.keys import BACKUP_ALGORITHMS, Algorithm, Backup
from custody.keys import repository, service, status
from custody.names import validate_name

if TYPE_CHECKING:
    from custody.ceremonies.retirement import Retirement
    from custody.runtime import Runtime

app = typer.Typer(help="Keys held in the HSM.", no_args_is_help=True)


@app.command("generate")
def generate(
    label: Annotated[str, typer.Option("--label", help="Label of the new key on the token.")],
    algorithm: Annotated[Algorithm, typer.Option("--algorithm", help="secp256k1 or ed25519.")],
    token: Annotated[
        str | None,
        typer.Option(
            "--token", help="The token to generate on, by name or label (default: the main one)."
        ),
    ] = None,
    no_backup: Annotated[
        bool,
        typer.Option(
            "--no-backup",
            help="Never extractable, not even wrapped: no backup ceremony can ever copy it, "
            "and losing the token loses it.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Generate a key pair on the token: sensitive, and extractable only wrapped under a trusted
    key during a backup ceremony (secp256k1; --no-backup: never), recorded in the ledger."""
    from custody.runtime import resolve_token

    validate_name("key", label)
    backup = Backup.NONE if no_backup or algorithm not in BACKUP_ALGORITHMS else Backup.TRUSTED_WRAP
    with context.runtime() as rt:
        configured = resolve_token(rt.settings, token)  # an unknown token: one line, nothing made
        with rt.db.read() as session:
            if label in {k.label for k in repository.keys(session)}:
                from custody.errors import AlreadyExists

                raise AlreadyExists(f"key {label!r} already exists")
        info = rt.token_for(configured).generate_key(label, algorithm, backup=backup)
        with rt.db.write() as session:
            key = service.record_key(
                session, info=info, token=configured, backup=backup, actor=context.operator()
            )
            others = rt.settings.extra_token_labels.values()
            note = status.backup_status(key, None, other_tokens=others)
    data = {
        "label": info.label,
        "algorithm": str(info.algorithm),
        "token": configured,
        "key_id": info.key_id,
        "public_key": info.public_key.hex(),
        "backup": str(backup),
        "backup_status": note,
    }
    emit(
        data,
        as_json=as_json,
        human=f"generated {info.algorithm} key [bold]{info.label}[/bold] on token {configured}\n"
        f"public key {info.public_key.hex()}\nbackup: {note}",
    )


@app.command("list")
def list_keys(as_json: JsonOption = False) -> None:
    """Keys known to custody, with their public keys and whether a backup holds them."""
    with context.runtime() as rt, rt.db.read() as session:
        others = set(rt.settings.extra_token_labels.values())
        latest = repository.latest_backups(session)
        keys = repository.keys(session)
        rows: list[dict[str, Any]] = [
            {
                "label": k.label,
                "algorithm": k.algorithm,
                "token": k.token,
                "key_id": k.key_id,
                "public_key": k.public_key,
                "created_at": k.created_at.isoformat(),
                "backup": k.backup,
                "retired_at": k.retired_at.isoformat() if k.retired_at else None,
                "backup_status": status.backup_status(k, latest.get(k.id), other_tokens=others),
                "last_backup": status.last_backup(latest.get(k.id)),
            }
            for k in keys
        ]
        cells = [status.backup_short(k, latest.get(k.id), other_tokens=others) for k in keys]
        notes = [
            f"{k.label}: {status.backup_status(k, None, other_tokens=others)}"
            for k in keys
            if status.needs_action(k, latest.get(k.id))
        ]
    table(
        rows
        if as_json
        else [row | {"backup": cell} for row, cell in zip(rows, cells, strict=True)],
        ["label", "algorithm", "token", "backup", "public_key"],
        as_json=as_json,
        empty="no keys yet: custody keys generate --label L --algorithm secp256k1",
    )
    if notes and not as_json:
        console.print("\n".join(notes), highlight=False, markup=False)


@app.command("retire")
def retire(
    label: Annotated[str, typer.Argument(help="The wallet key to retire.")],
    yes: Annotated[
        bool, typer.Option("--yes", help="Do not ask to type the label to confirm.")
    ] = False,
    force_no_backup: Annotated[
        bool,
        typer.Option(
            "--force-no-backup",
            help="Retire a key that no backup holds: it is then gone for good.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Retire a wallet key: its wallets sign nothing more, the key is destroyed on the token
    (after a confirmation), and the ledger records who retired what (`key.retired`)."""
    from custody.ceremonies import retirement, transcript
    from custody.errors import Conflict

    with context.runtime() as rt:
        with rt.db.read() as session:
            plan = retirement.plan(session, label, force_no_backup=force_no_backup)
        finishing = plan.retired_at is not None
        if finishing and not _on_token(rt, plan.label, plan.token):
            raise Conflict(f"key {label!r} was retired at {plan.retired_at} already")
        if not finishing:
            authorise = quorum.required(rt, "retire-key", plan.subject())
        _confirm_retirement(plan, yes=yes, finishing=finishing)
        record = transcript.begin(rt, "retire", context.operator())
        record.step(
            "retirement checked and confirmed",
            label=plan.label,
            public_key=plan.public_key,
            wallets=plan.wallets,
            last_backup=plan.last_backup,
            confirmed="--yes" if yes else "label typed at the terminal",
        )
        index = None
        if not finishing:
            with rt.db.write() as session:
                plan, index = retirement.record(
                    session,
                    plan,
                    context.operator(),
                    force_no_backup=force_no_backup,
                    authorise=authorise,
                )
            transcript.recorded(rt, record, "key.retired", index)
        destroyed = retirement.destroy(rt.token_for(plan.token), plan)
        record.step(
            "key pair destroyed on the token" if destroyed else "key pair was not on the token",
            token=plan.token,
        )
        saved = transcript.save(rt, record)
    data = {
        "label": plan.label,
        "public_key": plan.public_key,
        "wallets": plan.wallets,
        "retired_at": plan.retired_at,
        "ledger_index": index,
        "destroyed": destroyed,
        "transcript": {"path": str(saved.path), "sha256": saved.sha256},
    }
    names = ", ".join(w["name"] for w in plan.wallets) or "no wallet"
    emit(
        data,
        as_json=as_json,
        human=f"key {plan.label} retired ({names} sign nothing more)"
        + (f", ledger entry {index}" if index is not None else "")
        + ("; destroyed on the token" if destroyed else "; it was not on the token")
        + f"\ntranscript {saved.path} (and .txt; SHA-256 {saved.sha256})",
    )


def _on_token(rt: Runtime, label: str, token: str) -> bool:
    from custody.hsm.errors import KeyNotFound

    try:
        rt.token_for(token).get_key(label)
    except KeyNotFound:
        return False
    return True


def _confirm_retirement(plan: Retirement, *, yes: bool, finishing: bool) -> None:
    """The operator types the label (or passed --yes): destroying a key cannot be undone."""
    import sys

    from custody.ceremonies.errors import CeremonyRefused

    if yes:
        return
    if not sys.stdin.isatty():
        raise CeremonyRefused("retiring a key destroys it: confirm on a terminal, or pass --yes")
    wallets = ", ".join(f"{w['name']} ({w['chain']}, {w['address']})" for w in plan.wallets)
    console.print(
        f"{'Finishing the retirement of' if finishing else 'Retiring'} key {plan.label} "
        f"(public key {plan.public_key}).\nWallets that will sign nothing more: "
        f"{wallets or 'none'}.\nBackup: "
        f"{plan.last_backup or 'NONE: the key will be gone for good'}.",
        highlight=False,
        markup=False,
    )
    typed = typer.prompt("Type the key's label to destroy it")
    if typed != plan.label:
        raise CeremonyRefused("the label typed does not match: nothing was retired")
