"""The SDK installs without the server: importing it loads none of the server's packages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER_ONLY = ("sqlalchemy", "PyKCS11", "fastapi", "starlette", "uvicorn", "alembic")


def test_importing_the_client_loads_nothing_of_the_server() -> None:
    probe = (
        "import sys, custody.client\n"
        f"server = {SERVER_ONLY!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in server"
        " or (m.startswith('custody.') and not m.startswith('custody.client'))))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
