"""`custody hsm`: the HSM as the signers see it, and the login hold after a refused PIN."""

from __future__ import annotations

from typing import Any

import typer

from custody.cli import context
from custody.cli.output import JsonOption, emit
from custody.errors import Conflict
from custody.hsm.errors import PinIncorrect
from custody.hsmhealth import holds, status
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.runtime import hsm_credentials, token_label_of

app = typer.Typer(
    help="The HSM's health as the signers report it, and re-arming logins after a refused PIN.",
    no_args_is_help=True,
)


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
        f"{r.process}: {r.state.value}{f' ({r.detail})' if r.detail else ''} "
        f"since {r.since:%H:%M:%S}"
        for r in reports
    ] or ["no signer process reported in the last 30 s"]
    lines += [
        f"login hold on token {h.token_label!r} since {h.since} ({h.reason}); "
        "fix the PIN, then run `custody hsm rearm`"
        for h in held
    ]
    emit(answer, as_json=as_json, human="\n".join(lines))


@app.command("rearm")
def rearm_command(as_json: JsonOption = False) -> None:
    """Log in once with the configured PIN and, if the token accepts it, lift the login hold."""
    from custody.hsm.pkcs11 import Pkcs11Token

    with context.runtime() as rt:
        label = token_label_of(rt.settings)
        with rt.db.read() as session:
            hold = holds.hold_on(session, label)
        if hold is None:
            emit(
                {"token": label, "rearmed": False},
                as_json=as_json,
                human=f"no login hold on token {label!r}: nothing to re-arm",
            )
            return
        creds = hsm_credentials(rt.settings)
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
