"""Running the installed `custody` command in a subprocess, the way an operator would."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.cli import CUSTODY, ok_json

__all__ = ["CUSTODY", "clean_env", "custody_env", "ok_json", "run_custody"]


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
