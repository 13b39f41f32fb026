"""The exit status an operator's shell would see from `custody ARGS` run in this process.

One mapping for `tests.support.cli.invoke` and `tests.e2e.process.run_custody_many`, which
imports it in an interpreter of its own: so this module imports nothing but the command.
"""

from __future__ import annotations

import sys

from custody.cli.main import main


def exit_code(args: list[str]) -> int:
    """Run `custody ARGS`; its exit status. What the interpreter would print for
    `sys.exit("text")` goes to (the current) stderr."""
    try:
        main(args)
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        sys.stderr.write(f"{exc.code}\n")
        return 1
    raise AssertionError("custody.cli.main.main returned instead of exiting")
