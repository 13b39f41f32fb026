"""The wheel works without the repository: built, installed without `-e` into a fresh venv, and
run from a directory outside the clone, `custody init`, `keys list`, `policy validate` on the
shipped demo policy and `demo seed` work, and the approver app finds its templates and static
files. So nothing the service reads at run time is looked up relative to the source tree.

Installing every dependency from an index would take minutes: the fresh venv reaches the shared
venv's third-party packages through a `.pth` line naming its site-packages. A directory named in
a `.pth` file is added to sys.path but its own `.pth` files are not run, so the editable install
of custody there stays inactive and `import custody` can only find the wheel's copy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.process import clean_env, ok_json

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


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory outside the clone, and an environment naming nothing in it."""
    return tmp_path


def _env(home: Path) -> dict[str, str]:
    env = clean_env(home)
    env.pop("PYTHONPATH", None)
    return env


def _in_venv(venv: Path, code: str, cwd: Path, env: dict[str, str]) -> str:
    return _run([str(venv / "bin" / "python"), "-c", code], cwd=cwd, env=env).stdout.strip()


def test_the_installed_package_is_the_wheel(venv: Path, outside: Path) -> None:
    env = _env(outside / "home")
    location = Path(_in_venv(venv, "import custody; print(custody.__file__)", outside, env))
    assert location.is_relative_to(venv), location
    assert not location.is_relative_to(REPO)
    script = (venv / "bin" / "custody").read_text().splitlines()[0]
    assert script == f"#!{venv / 'bin' / 'python'}"


def test_init_keys_and_the_shipped_demo_policy(venv: Path, outside: Path) -> None:
    home = outside / "home"
    env = _env(home)
    custody = str(venv / "bin" / "custody")
    init = ok_json(_run([custody, "init", "--json"], cwd=outside, env=env))
    assert init["created_dev_token"] is True
    keys = ok_json(_run([custody, "keys", "list", "--json"], cwd=outside, env=env))
    assert isinstance(keys, list)
    assert keys
    demo = _in_venv(
        venv,
        "from custody.setup.demo import DEMO_POLICY; print(DEMO_POLICY)",
        outside,
        env,
    )
    assert Path(demo).is_relative_to(venv)
    _run([custody, "policy", "validate", demo], cwd=outside, env=env)
    _run([custody, "demo", "seed"], cwd=outside, env=env)
    versions = _run([custody, "policy", "versions"], cwd=outside, env=env)
    assert "demo.yaml" in versions.stdout


def test_the_approver_app_finds_its_pages_and_files(venv: Path, outside: Path) -> None:
    code = (
        "from starlette.staticfiles import StaticFiles\n"
        "from custody.web.render import environment\n"
        "environment.get_template('base.html')\n"
        "files = StaticFiles(packages=[('custody.web', 'static')])\n"
        "path, _ = files.lookup_path('app.css')\n"
        "print(path)\n"
    )
    css = _in_venv(venv, code, outside, _env(outside / "home"))
    assert Path(css).is_relative_to(venv)
