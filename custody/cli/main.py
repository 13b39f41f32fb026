"""The `custody` command: one line of diagnosis and a non-zero exit on any error."""

from __future__ import annotations

import logging
import sys

import click
import typer
from typer.exceptions import TyperException

from custody.cli import (
    approvers,
    assets,
    ceremony,
    chains,
    clients,
    configuration,
    demo,
    freezes,
    hsm,
    keys,
    ledger,
    policy,
    prices,
    server,
    venues,
    wallets,
    webhooks,
)
from custody.errors import CustodyError

app = typer.Typer(
    name="custody",
    help="Self-hosted custody: policy-gated, HSM-signed, ledgered.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("init")(server.init)
app.command("serve")(server.serve)
app.command("worker")(server.worker)
app.add_typer(keys.app, name="keys")
app.add_typer(chains.app, name="chains")
app.add_typer(wallets.app, name="wallets")
app.add_typer(assets.app, name="assets")
app.add_typer(venues.app, name="venues")
app.add_typer(prices.app, name="prices")
app.add_typer(clients.app, name="clients")
app.add_typer(approvers.app, name="approvers")
app.add_typer(policy.app, name="policy")
app.add_typer(ledger.app, name="ledger")
app.add_typer(ceremony.app, name="ceremony")
app.add_typer(configuration.app, name="config")
app.add_typer(hsm.app, name="hsm")
app.command("freeze")(freezes.freeze)
app.command("unfreeze")(freezes.unfreeze)
app.command("freezes")(freezes.list_freezes)
app.add_typer(demo.app, name="demo")
app.add_typer(webhooks.app, name="webhooks")


_QUIET = logging.NullHandler()


def main(argv: list[str] | None = None) -> None:
    from custody.cli.output import fail_line

    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args
    # The store logs a database failure's cause at WARNING for servers' logs; a command prints it
    # in its one error line (`diagnosis`), so without a configured log it is not printed twice.
    logging.getLogger("custody.store").addHandler(_QUIET)
    try:
        result = app(args=args, standalone_mode=False)
    except CustodyError as exc:
        fail_line(exc.diagnosis(), as_json=as_json, status=exc.status)
        sys.exit(1)
    except (click.exceptions.Abort, typer.Abort):
        fail_line("aborted", as_json=as_json)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.ClickException, TyperException) as exc:
        # Usage errors (unknown option, missing argument, bad value): exit 2, like click.
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        code = int(getattr(exc, "exit_code", 2))
        fail_line(message, as_json=as_json, status=code)
        sys.exit(code)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
