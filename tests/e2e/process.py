"""Running the installed `custody` command in a subprocess, the way an operator would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.cli import CUSTODY, CliResult, ok_json

ROOT = Path(__file__).resolve().parents[2]

__all__ = [
    "CUSTODY",
    "clean_env",
    "custody_env",
    "ok_json",
    "run_custody",
    "run_custody_many",
]


def custody_env(extra: Mapping[str, str] | None = None, **more: str) -> dict[str, str]:
    """The test process's environment (SOFTHSM2_CONF of the session token) plus `extra`."""
    return {**os.environ, **(extra or {}), **more}


def clean_env(home: Path, **more: str) -> dict[str, str]:
    """No HSM settings at all: only CUSTODY_HOME (and `more`), as on a fresh machine."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_") and k != "SOFTHSM2_CONF"
    }
    env["CUSTODY_HOME"] = str(home)
    env.update(more)
    return env


def run_custody(
    args: Sequence[str], env: Mapping[str, str], *, timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CUSTODY, *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
    )


_MANY = r"""
import contextlib, io, json, sys
sys.path.append(sys.argv[2])  # the checkout these tests come from, for tests.support
from tests.support.exit_codes import exit_code
done = []
for args in json.loads(sys.argv[1]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = exit_code(args)
    done.append([args, code, out.getvalue(), err.getvalue()])
    if code != 0:
        break
json.dump(done, sys.__stdout__)
"""


def run_custody_many(
    commands: Sequence[Sequence[str]], env: Mapping[str, str], *, timeout: float = 300
) -> list[CliResult]:
    """`custody` commands one after another in one process of their own: for an installation
    whose token is not the session's, one interpreter start instead of one a command. Stops at
    the first command that fails; its result is the last one."""
    ran = subprocess.run(
        [sys.executable, "-c", _MANY, json.dumps([list(c) for c in commands]), str(ROOT)],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert ran.returncode == 0, f"exit {ran.returncode}\n{ran.stdout}\n{ran.stderr}"
    return [
        CliResult([CUSTODY, *args], code, out, err)
        for args, code, out, err in json.loads(ran.stdout)
    ]
