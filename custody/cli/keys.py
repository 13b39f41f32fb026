"""`custody keys`: generate keys inside the HSM and list them."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from custody.cli import context
from custody.cli.output import JsonOption, console, emit, table
from custody.hsm.keys import BACKUP_ALGORITHMS, Algorithm, Backup
from custody.keys import repository, service, status
from custody.names import validate_name

app = typer.Typer(help="Keys held in the HSM.", no_args_is_help=True)


@app.command("generate")
def generate(
    label: Annotated[str, typer.Option("--label", help="Label of the new key on the token.")],
    algorithm: Annotated[Algorithm, typer.Option("--algorithm", help="secp256k1 or ed25519.")],
    token: Annotated[
        str | None, typer.Option("--token", help="Token label (default: configured).")
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
    # custody.setup.init brings in Alembic, which only `custody init` needs at import.
    from custody.setup.init import token_label

    validate_name("key", label)
    backup = Backup.NONE if no_backup or algorithm not in BACKUP_ALGORITHMS else Backup.TRUSTED_WRAP
    with context.runtime() as rt:
        configured = token_label(rt)
        if token is not None and token != configured:
            raise typer.BadParameter(
                f"token {token!r} is not the configured token {configured!r} "
                "(set CUSTODY_HSM_TOKEN to use another)",
                param_hint="--token",
            )
        with rt.db.read() as session:
            if label in {k.label for k in repository.keys(session)}:
                from custody.errors import AlreadyExists

                raise AlreadyExists(f"key {label!r} already exists")
        info = rt.token().generate_key(label, algorithm, backup=backup)
        with rt.db.write() as session:
            key = service.record_key(
                session, info=info, token=configured, backup=backup, actor=context.operator()
            )
            note = status.backup_status(key, None)
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
                "backup_status": status.backup_status(k, latest.get(k.id)),
                "last_backup": status.last_backup(latest.get(k.id)),
            }
            for k in keys
        ]
        cells = [status.backup_short(k, latest.get(k.id)) for k in keys]
        notes = [
            f"{k.label}: {status.backup_status(k, None)}"
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
