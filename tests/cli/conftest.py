from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.process import clean_env, ok_json, run_custody


class CliHome:
    """A fresh installation made by `custody init` with the development token, no HSM settings."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.env = clean_env(home)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_custody(list(args), self.env, cwd=self.home.parent)

    def json(self, *args: str) -> Any:
        return ok_json(self.run(*args, "--json"))


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> CliHome:
    home = CliHome(tmp_path_factory.mktemp("cli") / "home")
    home.json("init")
    return home
