"""The `custody` command: one line of diagnosis and a non-zero exit on any error."""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass

import click
import typer
from typer import _click as typer_click  # Typer ships its own click: its commands are these
from typer.core import TyperGroup
from typer.exceptions import TyperException

from custody.errors import CustodyError


@dataclass(frozen=True)
class _Entry:
    """Where a top-level command lives: `attribute` of `module`, a Typer app or a function."""

    module: str
    attribute: str = "app"


# Each command's module is imported only when that command runs: one command should not pay for
# the imports of all the others (a process that runs `custody keys list` never loads WebAuthn).
_COMMANDS: dict[str, _Entry] = {
    "init": _Entry("custody.cli.server", "init"),
    "serve": _Entry("custody.cli.server", "serve"),
    "worker": _Entry("custody.cli.server", "worker"),
    "keys": _Entry("custody.cli.keys"),
    "chains": _Entry("custody.cli.chains"),
    "wallets": _Entry("custody.cli.wallets"),
    "assets": _Entry("custody.cli.assets"),
    "venues": _Entry("custody.cli.venues"),
    "prices": _Entry("custody.cli.prices"),
    "clients": _Entry("custody.cli.clients"),
    "approvers": _Entry("custody.cli.approvers"),
    "policy": _Entry("custody.cli.policy"),
    "ledger": _Entry("custody.cli.ledger"),
    "ceremony": _Entry("custody.cli.ceremony"),
    "config": _Entry("custody.cli.configuration"),
    "hsm": _Entry("custody.cli.hsm"),
    "freeze": _Entry("custody.cli.freezes", "freeze"),
    "unfreeze": _Entry("custody.cli.freezes", "unfreeze"),
    "freezes": _Entry("custody.cli.freezes", "list_freezes"),
    "demo": _Entry("custody.cli.demo"),
    "webhooks": _Entry("custody.cli.webhooks"),
}


def _load(name: str) -> typer_click.Command:
    entry = _COMMANDS[name]
    target = getattr(importlib.import_module(entry.module), entry.attribute)
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = name
        return group
    single = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    single.command(name)(target)
    return typer.main.get_command(single)


class _Commands(TyperGroup):
    """The root group: knows every command's name, builds a command when it is asked for."""

    def list_commands(self, ctx: typer_click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: typer_click.Context, cmd_name: str) -> typer_click.Command | None:
        return _load(cmd_name) if cmd_name in _COMMANDS else None


root = _Commands(
    name="custody",
    help="Self-hosted custody: policy-gated, HSM-signed, ledgered.",
    no_args_is_help=True,
)


_QUIET = logging.NullHandler()


def main(argv: list[str] | None = None) -> None:
    from custody.cli.output import fail_line

    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args
    # The store logs a database failure's cause at WARNING for servers' logs; a command prints it
    # in its one error line (`diagnosis`), so without a configured log it is not printed twice.
    logging.getLogger("custody.store").addHandler(_QUIET)
    try:
        result = root.main(args=args, prog_name="custody", standalone_mode=False)
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
