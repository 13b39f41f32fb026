"""Running the `custody` command in this process: exit code, stdout and stderr kept apart.

`invoke` calls `custody.cli.main.main`, the installed entry point, with the environment a
subprocess would get, and reports what an operator's shell would see: the exit status and the two
streams. It is about 100 times faster than a subprocess (no interpreter start, no imports), so most
CLI tests use it; a few subprocess smoke tests (`tests/cli/test_cli_entry_point.py`,
`tests/cli/test_cli_init.py`) prove that the installed script itself works.

SoftHSM reads SOFTHSM2_CONF once per process, so a command run here can only use the session token
(`tests/conftest.py`): give it `installation_env(...)`, which names that token through
CUSTODY_HSM_*. A command that would use a development token under CUSTODY_HOME needs a process of
its own (`tests.e2e.process.run_custody`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.support.exit_codes import exit_code

CUSTODY = str(Path(sys.prefix) / "bin" / "custody")


@dataclass(frozen=True)
class CliResult:
    """What a finished `custody` command left: the fields of `subprocess.CompletedProcess`."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def invoke(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    cwd: Path | None = None,
    stdin: str | None = None,
) -> CliResult:
    """Run `custody ARGS` here with only `env`'s CUSTODY_* settings (none of the caller's);
    `stdin`, when given, is what the command reads from standard input (not a terminal)."""
    env = dict(env or {})
    conf = env.pop("SOFTHSM2_CONF", None)
    if conf is not None and conf != os.environ.get("SOFTHSM2_CONF"):
        raise AssertionError(
            f"SoftHSM in this process uses {os.environ.get('SOFTHSM2_CONF')!r}, not {conf!r}: "
            "run a command that needs another token in a subprocess"
        )
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("CUSTODY_")]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        if conf is None:
            conf = os.environ.get("SOFTHSM2_CONF")
        if conf is not None:
            # Set (to what it is) so that the context restores it should a development token,
            # which points SOFTHSM2_CONF at CUSTODY_HOME/hsm, change it.
            patch.setenv("SOFTHSM2_CONF", conf)
        patch.setattr(sys, "argv", [CUSTODY, *args])  # click names the program after argv[0]
        if cwd is not None:
            patch.chdir(cwd)
        if stdin is not None:
            patch.setattr(sys, "stdin", io.StringIO(stdin))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = exit_code(list(args))
    return CliResult([CUSTODY, *args], code, out.getvalue(), err.getvalue())


class Finished(Protocol):
    """A finished command, in this process (`CliResult`) or another (`CompletedProcess`)."""

    @property
    def returncode(self) -> int: ...
    @property
    def stdout(self) -> str: ...
    @property
    def stderr(self) -> str: ...


def ok_json(result: Finished) -> Any:
    """The parsed JSON output of a command that must have succeeded."""
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return json.loads(result.stdout)
