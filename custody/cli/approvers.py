"""`custody approvers`: the people who approve requests, their groups (and what a group may do
besides approving), devices and passkeys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from custody.approvals import approvers as service
from custody.cli import context
from custody.cli.output import JsonOption, emit, table

app = typer.Typer(help="Approvers: people who approve requests.", no_args_is_help=True)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Approver name (what they sign as).")],
    group: Annotated[list[str], typer.Option("--group", help="A group; repeat for several.")],
    device_key: Annotated[
        Path | None,
        typer.Option(
            "--device-key",
            exists=True,
            dir_okay=False,
            readable=True,
            help="Ed25519 public key (PEM) of a device that signs approvals over the API.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Add an approver in one or more groups."""
    pem = device_key.read_bytes() if device_key else None
    with context.runtime() as rt, rt.db.write() as session:
        approver = service.add_approver(
            session, name=name, groups=group, device_key_pem=pem, actor=context.operator()
        )
        groups = sorted(set(group))
        data = {
            "id": approver.id,
            "name": approver.name,
            "groups": groups,
            "device_key": approver.device_public_key is not None,
        }
    emit(data, as_json=as_json, human=f"approver {name} ({', '.join(groups)}): {approver.id}")


@app.command("list")
def list_approvers(as_json: JsonOption = False) -> None:
    """All approvers with their groups, device keys, passkeys and whether they may start
    withdrawals in the approver app (maker)."""
    with context.runtime() as rt, rt.db.read() as session:
        rows = [
            {
                "id": a.id,
                "name": a.name,
                "groups": ",".join(a.groups),
                "device_key": a.device_public_key is not None,
                "passkeys": a.passkeys,
                "maker": a.maker,
                "disabled": a.disabled,
            }
            for a in service.list_approvers(session)
        ]
    table(
        rows,
        ["name", "groups", "device_key", "passkeys", "maker", "disabled", "id"],
        as_json=as_json,
        empty="no approvers yet: custody approvers add NAME --group treasury",
    )


GroupArgument = Annotated[str, typer.Argument(help="Approver group.")]
PermissionArgument = Annotated[
    service.Permission,
    typer.Argument(help="maker: its members may start withdrawals in the approver app."),
]


@app.command("grant")
def grant(
    group: GroupArgument, permission: PermissionArgument, as_json: JsonOption = False
) -> None:
    """Grant a group a permission (maker: start withdrawals, never approving one's own)."""
    _set_permission(group, permission, granted=True, as_json=as_json)


@app.command("revoke")
def revoke(
    group: GroupArgument, permission: PermissionArgument, as_json: JsonOption = False
) -> None:
    """Revoke a group's permission; it holds from the members' next click."""
    _set_permission(group, permission, granted=False, as_json=as_json)


def _set_permission(
    group: str, permission: service.Permission, *, granted: bool, as_json: bool
) -> None:
    with context.runtime() as rt, rt.db.write() as session:
        changed = service.set_permission(
            session, group=group, permission=permission, granted=granted, actor=context.operator()
        )
    state = "granted" if granted else "revoked"
    data = {"group": group, "permission": permission.value, "granted": granted, "changed": changed}
    human = f"group {group}: {permission.value} {state}" + ("" if changed else " (already so)")
    emit(data, as_json=as_json, human=human)


@app.command("disable")
def disable(name: Annotated[str, typer.Argument()], as_json: JsonOption = False) -> None:
    """Disable an approver: their approvals stop counting at once, also on pending requests."""
    with context.runtime() as rt, rt.db.write() as session:
        approver = service.disable(session, name=name, actor=context.operator())
        data = {"id": approver.id, "name": approver.name, "disabled": True}
    emit(data, as_json=as_json, human=f"approver {name} disabled")


@app.command("invite")
def invite(
    name: Annotated[str, typer.Argument()],
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", help="Public address of the approver app (default: http://HOST:PORT)."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """A one-time link (valid 24 h) with which the approver registers a passkey on their phone."""
    with context.runtime() as rt:
        settings = rt.settings
        with rt.db.write() as session:
            token = service.invite(session, name=name, actor=context.operator())
    base = (base_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    link = f"{base}/app/enrol/{token}"
    emit(
        {"name": name, "link": link, "expires_in_hours": 24},
        as_json=as_json,
        human=f"send this one-time link to {name} (valid 24 h):\n{link}",
    )
