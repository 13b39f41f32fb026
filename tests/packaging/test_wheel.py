"""The wheel works without the repository: built, installed without `-e` into a fresh venv, and
run from a directory outside the clone, `custody init` (the migrations), `keys list`,
`policy validate` on the shipped demo policy, `demo seed`, and `custody serve` with the approver
app's templates and static files work. So nothing the service reads at run time is looked up
relative to the source tree.

Installing every dependency from an index would take minutes: the fresh venv reaches the test
run's venv's third-party packages through a `.pth` line naming its site-packages. A directory
named in a `.pth` file is added to sys.path but its own `.pth` files are not run, so the
editable install of custody there stays inactive and `import custody` can only find the wheel's
copy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.process import clean_env, ok_json
from tests.support.tree import free_port, start

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    ran = subprocess.run(args, capture_output=True, text=True, timeout=180, check=False, **kwargs)
    assert ran.returncode == 0, f"{args}: exit {ran.returncode}\n{ran.stdout}\n{ran.stderr}"
    return ran


def _build_wheel(tmp: Path) -> Path:
    # From a copy of the sources: an in-tree build would reuse a stale build/ directory, which
    # could ship files the tree no longer has.
    source = tmp / "source"
    shutil.copytree(
        REPO / "custody", source / "custody", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    dist = tmp / "dist"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(source)]
    )
    (wheel,) = dist.glob("custody-*.whl")
    return wheel


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(tmp)
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    # Installed before the shared packages become visible, so pip sees no other custody.
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ]
    )
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
        ).stdout.strip()
    )
    (site / "shared-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


@dataclass(frozen=True)
class Installed:
    """The wheel in its venv, and an installation made by its `custody init` in a directory
    outside the clone (also the working directory of every command)."""

    venv: Path
    outside: Path
    env: dict[str, str]
    init: dict[str, Any]

    @property
    def custody(self) -> str:
        return str(self.venv / "bin" / "custody")

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return _run([self.custody, *args], cwd=self.outside, env=self.env)

    def python(self, code: str) -> str:
        ran = _run([str(self.venv / "bin" / "python"), "-c", code], cwd=self.outside, env=self.env)
        return ran.stdout.strip()


@pytest.fixture(scope="module")
def installed(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    outside = tmp_path_factory.mktemp("outside")
    env = clean_env(outside / "home")
    env.pop("PYTHONPATH", None)  # nothing may point into the clone
    init = ok_json(_run([str(venv / "bin" / "custody"), "init", "--json"], cwd=outside, env=env))
    return Installed(venv, outside, env, init)


def test_the_installed_package_is_the_wheel(installed: Installed) -> None:
    code = "import custody, custody.setup.demo as d; print(custody.__file__); print(d.DEMO_POLICY)"
    package, demo_policy = map(Path, installed.python(code).splitlines())
    for path in (package, demo_policy):
        assert path.is_relative_to(installed.venv), path
        assert not path.is_relative_to(REPO), path
    shebang = Path(installed.custody).read_text().splitlines()[0]
    assert shebang == f"#!{installed.venv / 'bin' / 'python'}"


def test_init_migrates_and_creates_the_keys(installed: Installed) -> None:
    assert installed.init["created_dev_token"] is True
    assert installed.init["created_ledger_key"] is True
    keys = ok_json(installed.run("keys", "list", "--json"))
    assert isinstance(keys, list)
    assert keys


def test_the_shipped_demo_policy_validates_and_seeds(installed: Installed) -> None:
    demo_policy = installed.python("import custody.setup.demo as d; print(d.DEMO_POLICY)")
    installed.run("policy", "validate", demo_policy)
    installed.run("demo", "seed")
    assert "demo.yaml" in installed.run("policy", "versions").stdout


def test_serve_answers_with_the_shipped_pages_and_files(installed: Installed) -> None:
    """`custody serve` from the wheel: ready, and the approver app renders its sign-in page
    (templates) and serves its style sheet (static files) from the installed package."""
    port = free_port()
    argv = ["serve", "--no-worker", "--host", "127.0.0.1", "--port", str(port)]
    log = installed.outside / "serve.log"
    tree = start(argv, installed.env, log, roles=["api-1"], port=port, command=installed.custody)
    try:
        css = httpx.get(f"{tree.url}/app/static/app.css", timeout=10)
        page = httpx.get(f"{tree.url}/app/login", timeout=10)
    finally:
        tree.stop()
    assert css.status_code == 200
    assert css.content == (REPO / "custody" / "web" / "static" / "app.css").read_bytes()
    assert page.status_code == 200, page.text
    assert "<html" in page.text
