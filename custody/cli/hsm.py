"""`custody hsm`: the HSM's tokens as the signers see them, the login hold after a refused PIN,
and one more development token."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from custody.cli import context
from custody.cli.output import JsonOption, emit, table
from custody.errors import Conflict
from custody.hsm.errors import PinIncorrect
from custody.hsmhealth import holds, status
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.runtime import hsm_credentials, resolve_token, token_labels
from custody.settings import Settings

app = typer.Typer(
    help="The HSM's tokens and their health as the signers report it, re-arming logins after "
    "a refused PIN, and one more development token.",
    no_args_is_help=True,
)
TokenOption = Annotated[
    str | None,
    typer.Option("--token", help="The token, by name or label (default: the main one)."),
]


@app.command("status")
def status_command(as_json: JsonOption = False) -> None:
    """What each signer process last found of the HSM, and any login hold."""
    with context.runtime() as rt, rt.db.read() as session:
        reports = status.fresh_reports(session, max_age_seconds=status.STALE_AFTER_SECONDS)
        held = holds.all_holds(session)
    answer: dict[str, Any] = {
        "signers": [
            {
                "process": r.process,
                "token": r.token_label,
                "state": r.state.value,
                "detail": r.detail,
                "since": r.since.isoformat(),
                "checked_at": r.checked_at.isoformat(),
            }
            for r in reports
        ],
        "login_holds": [
            {"token": h.token_label, "since": h.since, "held_by": h.held_by, "reason": h.reason}
            for h in held
        ],
    }
    lines = [
        f"{r.process} on token {r.token_label}: {r.state.value}"
        f"{f' ({r.detail})' if r.detail else ''} since {r.since:%H:%M:%S}"
        for r in reports
    ] or ["no signer process reported in the last 30 s"]
    lines += [
        f"login hold on token {h.token_label!r} since {h.since} ({h.reason}); "
        "fix the PIN, then run `custody hsm rearm`"
        for h in held
    ]
    emit(answer, as_json=as_json, human="\n".join(lines))


@app.command("tokens")
def tokens_command(as_json: JsonOption = False) -> None:
    """The installation's tokens (the main one first), each with its health as the signer
    processes last reported it, its login hold if any, and where its PIN comes from."""
    with context.runtime() as rt, rt.db.read() as session:
        settings = rt.settings
        held = {h.token_label: h for h in holds.all_holds(session)}
        # A problem any signer process reports wins over `ok`, as for /readyz.
        reports = {
            label: status.of_token(
                session, max_age_seconds=status.STALE_AFTER_SECONDS, token_label=label
            )
            for label in token_labels(settings)
        }
    names = {label: name for name, label in settings.extra_token_labels.items()}
    rows: list[dict[str, Any]] = []
    for label, report in reports.items():
        hold = held.get(label)
        rows.append(
            {
                "token": names.get(label, label),
                "label": label,
                "main": label == settings.main_token_label,
                "health": "login_held" if hold else _health(report),
                "detail": hold.reason if hold else (report.detail if report else ""),
                "pin_source": _pin_source(settings, names.get(label)),
            }
        )
    table(rows, ["token", "label", "main", "health", "detail", "pin_source"], as_json=as_json)


def _health(report: status.Report | None) -> str:
    return "no signer report" if report is None else report.state.value


def _pin_source(settings: Settings, name: str | None) -> str:
    """Where the PIN is read from, never the PIN."""
    if name is None:
        if settings.uses_dev_token:
            return str(settings.hsm_dir / "pins.json")
        if settings.hsm_pin_file is not None:
            return str(settings.hsm_pin_file)
        return "CUSTODY_HSM_PIN"
    token = settings.tokens[name]
    return f"${token.pin_env}" if token.pin_env else str(token.pin_file)


@app.command("add-token")
def add_token_command(
    name: Annotated[str, typer.Argument(help="The new token's name and label.")],
    as_json: JsonOption = False,
) -> None:
    """DEVELOPMENT ONLY: create one more SoftHSM2 token beside the development token (the
    same softhsm2.conf under CUSTODY_HOME/hsm, its PINs in pins-NAME.json there) and register
    it in custody.toml as [tokens."NAME"]. A production HSM's tokens are initialised with its
    vendor's tools and named in custody.toml by label, each with pin_file or pin_env."""
    from custody.errors import AlreadyExists, ValidationFailed
    from custody.hsm.devtoken import add_dev_token
    from custody.settings.tokens import register_token

    settings = context.settings()
    if not settings.uses_dev_token:
        raise ValidationFailed(
            "`custody hsm add-token` creates development tokens only; name a production "
            f'token in custody.toml as [tokens."{name}"] with its label and pin_file or pin_env'
        )
    if name in token_labels(settings) or name in settings.tokens:
        raise AlreadyExists(f"token {name!r} is configured already")
    made = add_dev_token(settings.hsm_dir, name)
    config = register_token(settings, name, label=made.label, pin_file=made.pin_file)
    emit(
        {"token": name, "label": made.label, "pin_file": str(made.pin_file), "config": str(config)},
        as_json=as_json,
        human=f"development token {made.label} created beside {settings.main_token_label} "
        f"(PINs in {made.pin_file}) and registered in {config}; "
        f"generate keys on it with `custody keys generate --token {name} ...`",
    )


@app.command("rearm")
def rearm_command(token: TokenOption = None, as_json: JsonOption = False) -> None:
    """Log in once with the configured PIN and, if the token accepts it, lift the login hold."""
    from custody.hsm.pkcs11 import Pkcs11Token

    with context.runtime() as rt:
        label = resolve_token(rt.settings, token)
        with rt.db.read() as session:
            hold = holds.hold_on(session, label)
        if hold is None:
            emit(
                {"token": label, "rearmed": False},
                as_json=as_json,
                human=f"no login hold on token {label!r}: nothing to re-arm",
            )
            return
        creds = hsm_credentials(rt.settings, label)
        try:
            # The operator's one deliberate attempt, past the hold the runtime would enforce.
            Pkcs11Token(creds.module, creds.token, creds.pin).close()
        except PinIncorrect as exc:
            raise Conflict(f"{exc.message}; the login hold stays (since {hold.since})") from exc
        with rt.db.write() as session:
            holds.lift(session, label)
            ledger.append(
                session,
                EventKind.HSM_REARMED,
                context.operator(),
                {
                    "token": label,
                    "held_since": hold.since,
                    "held_by": hold.held_by,
                    "reason": hold.reason,
                },
            )
    emit(
        {"token": label, "rearmed": True, "held_since": hold.since},
        as_json=as_json,
        human=f"token {label!r} accepted the PIN: logins re-armed (held since {hold.since})",
    )
