"""The installed `custody` script, run as a process: it starts, helps, and stays light.

Most CLI tests call the entry point in-process (`tests.support.cli.invoke`); these few, with the
fresh-machine `custody init` in `test_cli_init.py`, are what prove the installed script works.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.process import CUSTODY, clean_env, run_custody
from tests.support.cli import invoke

pytestmark = pytest.mark.slow

# eth-account pulls in eth-keyfile and py_ecc (half a second of imports); only commands that build
# or check transactions need them, so the command's own module must not import them.
HEAVY = ("eth_account", "eth_keyfile", "py_ecc", "alembic", "PyKCS11", "fastapi", "uvicorn")


def test_importing_the_cli_leaves_heavy_libraries_unloaded() -> None:
    probe = (
        "import json, sys\n"
        "import custody.cli.main\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(done.stdout) == []


def test_help_lists_the_commands() -> None:
    done = subprocess.run(
        [CUSTODY, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "Usage: custody" in done.stdout
    for command in ("init", "serve", "worker", "keys", "wallets", "policy", "ledger"):
        assert command in done.stdout


@pytest.mark.parametrize(
    ("args", "env"),
    [
        pytest.param(["init"], {"CUSTODY_ENVIRONMENT": "production"}, id="refusal"),
        pytest.param(["policy", "validate", "no-such.yaml", "--json"], {}, id="refusal-json"),
    ],
)
def test_in_process_runs_see_what_the_script_prints(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    """`invoke` is faithful: same exit status, same stdout, same stderr as the installed script."""
    home = tmp_path / "home"
    done = run_custody(args, clean_env(home, **env))
    here = invoke(args, {"CUSTODY_HOME": str(home), **env})
    assert (here.returncode, here.stdout, here.stderr) == (
        done.returncode,
        done.stdout,
        done.stderr,
    )
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: ")


def test_usage_error_exits_2_with_one_line(tmp_path: Path) -> None:
    args = ["wallets", "create", "w", "--json"]
    done = run_custody(args, clean_env(tmp_path))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: Missing option")
    assert json.loads(done.stdout)["error"]["status"] == 2
    here = invoke(args, {"CUSTODY_HOME": str(tmp_path)})
    assert (here.returncode, here.stdout, here.stderr) == (2, done.stdout, done.stderr)
