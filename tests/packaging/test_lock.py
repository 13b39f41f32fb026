"""requirements.lock, what the image installs with `pip install --require-hashes`: every
dependency pyproject.toml declares is pinned there to a release its specifier admits, with the
hashes of that release's files; and `.ci/audit` never passes an audit that checked nothing."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"
BUILD_LOCK = REPO / "requirements-build.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\$")
_HASH = re.compile(r"^ +--hash=sha256:[0-9a-f]{64}( \\)?$")


def pins(lock: Path = LOCK) -> dict[str, tuple[str, int]]:
    """name -> (version, how many hashes), read line by line as pip reads the file."""
    found: dict[str, tuple[str, int]] = {}
    current = None
    for line in lock.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        pinned = _PIN.match(line)
        if pinned:
            current = canonicalize_name(pinned[1])
            assert current not in found, f"{current} pinned twice"
            found[current] = (pinned[2], 0)
        elif _HASH.match(line) and current is not None:
            version, hashes = found[current]
            found[current] = (version, hashes + 1)
        else:
            pytest.fail(f"{lock.name}: not a pin or a hash (an -e, a URL?): {line!r}")
    return found


def declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(spec) for spec in project["dependencies"]]


def test_every_declared_dependency_is_pinned_to_an_admitted_release_with_hashes() -> None:
    locked = pins()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is not in requirements.lock: make lock"
        version, hashes = locked[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version}, outside {requirement}: make lock"
        )
        assert hashes >= 1, f"{name}: no hash"
    assert all(hashes >= 1 for _, hashes in locked.values())
    assert "custody" not in locked  # the image installs its own wheel, --no-deps


def test_the_otel_extra_is_locked_for_the_image() -> None:
    """The image can trace once OTEL_* switch it on (docs/metrics.md): every requirement of
    the `otel` extra is pinned too, to a release it admits (`make lock` locks the extra)."""
    locked = pins()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    otel = [Requirement(spec) for spec in project["optional-dependencies"]["otel"]]
    assert otel
    for requirement in otel:
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} (extra otel) is not in requirements.lock: make lock"
        assert requirement.specifier.contains(locked[name][0], prereleases=True), requirement


def test_what_a_declared_extra_brings_is_locked_too() -> None:
    """`psycopg[binary]`: the extra's own requirements (psycopg-binary) must be pinned, or the
    image's --require-hashes install would lack them."""
    locked = pins()
    extras = [r for r in declared() if r.extras]
    assert extras
    for requirement in extras:
        brought = [
            needed
            for needed in map(Requirement, metadata.requires(requirement.name) or [])
            if needed.marker is not None
            and not needed.marker.evaluate({"extra": ""})
            and any(needed.marker.evaluate({"extra": extra}) for extra in requirement.extras)
        ]
        assert brought, requirement
        for needed in brought:
            assert canonicalize_name(needed.name) in locked, f"{needed} ({requirement})"


def test_what_builds_the_wheel_is_locked_with_hashes() -> None:
    """The image builds custody's wheel without isolation, from requirements-build.lock."""
    locked = pins(BUILD_LOCK)
    build = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    for requirement in map(Requirement, build):
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is not in requirements-build.lock: make lock"
        assert requirement.specifier.contains(locked[name][0], prereleases=True), requirement
    assert all(hashes >= 1 for _, hashes in locked.values())


def _audit(tmp_path: Path, *, data: bool, mode: str) -> subprocess.CompletedProcess[str]:
    """.ci/audit with stand-ins: a `python` whose probe finds vulnerability data or not, and a
    `pip-audit` beside it that records its arguments."""
    repo, tools = tmp_path / "repo", tmp_path / "tools"
    (repo / ".ci").mkdir(parents=True)
    tools.mkdir()
    shutil.copy(REPO / ".ci" / "audit", repo / ".ci" / "audit")
    stand_ins = {
        "python": f"#!/bin/sh\ncat >/dev/null\nexit {0 if data else 1}\n",
        "pip-audit": f'#!/bin/sh\necho "$@" > {tmp_path / "audited"}\n',
    }
    for name, script in stand_ins.items():
        (tools / name).write_text(script)
        (tools / name).chmod(0o755)
    bash = shutil.which("bash")
    assert bash
    return subprocess.run(
        [bash, str(repo / ".ci" / "audit"), str(tools / "python")],
        env={"PATH": "/usr/bin:/bin", "AUDIT": mode},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_audit_fails_clearly_without_vulnerability_data(tmp_path: Path) -> None:
    ran = _audit(tmp_path, data=False, mode="required")
    assert ran.returncode == 1
    assert "audit: FAIL" in ran.stderr
    assert "NOT audited" in ran.stderr
    assert not (tmp_path / "audited").exists()


def test_audit_in_make_test_says_nothing_was_audited(tmp_path: Path) -> None:
    ran = _audit(tmp_path, data=False, mode="auto")
    assert ran.returncode == 0
    assert ran.stderr.count("NOTICE") == 1
    assert "NOT audited" in ran.stderr


@pytest.mark.parametrize("mode", ["required", "auto"])
def test_audit_checks_the_lock_strictly_when_it_can(tmp_path: Path, mode: str) -> None:
    ran = _audit(tmp_path, data=True, mode=mode)
    assert ran.returncode == 0, ran.stderr
    args = (tmp_path / "audited").read_text().split()
    # --strict: a release it could not look up fails the audit instead of being skipped.
    assert {"--strict", "--require-hashes", "--disable-pip"} <= set(args)
    assert args[args.index("--requirement") + 1] == "requirements.lock"
