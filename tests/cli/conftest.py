from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from custody.hsm import DevToken
from tests.support.cli import CliResult, invoke, ok_json
from tests.support.installation import installation_env


class CliHome:
    """A fresh installation made by `custody init`, its commands run in this process.

    The HSM is the session token (named through CUSTODY_HSM_*), shared with other installations,
    so key labels a test makes must be unique to this home: `cli.key("x")`.
    `tests/cli/test_cli_init.py` covers `custody init` making its own development token.
    """

    def __init__(self, home: Path, token: DevToken) -> None:
        self.home = home
        self.env = installation_env(home, token, None)

    def key(self, name: str) -> str:
        return f"{name}-{self.home.name}"

    def run(self, *args: str) -> CliResult:
        return invoke(list(args), self.env, cwd=self.home.parent)

    def json(self, *args: str) -> Any:
        return ok_json(self.run(*args, "--json"))


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory, hsm_dev_token: DevToken) -> CliHome:
    home = CliHome(tmp_path_factory.mktemp("cli-home"), hsm_dev_token)
    home.json("init")
    return home
