"""`.ci/run` requires PostgreSQL: when none answers (and none can be started) it fails with one
clear line before running anything, so CI cannot go green with the PostgreSQL tests skipped.

Run in a copy of the script with a PATH of stand-ins: `pg_isready` answers as told, `make` only
records that it ran, and no `pg_ctlcluster` exists, so the real server is never touched.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("bash", "dirname", "ls", "head", "seq", "sleep")


def _run_ci(tmp_path: Path, *, postgres_answers: bool) -> subprocess.CompletedProcess[str]:
    repo, bin_dir = tmp_path / "repo", tmp_path / "bin"
    (repo / ".ci").mkdir(parents=True)
    bin_dir.mkdir()
    shutil.copy(REPO / ".ci" / "run", repo / ".ci" / "run")
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    stand_ins = {
        "pg_isready": f"#!/bin/sh\nexit {0 if postgres_answers else 2}\n",
        "make": f'#!/bin/sh\necho "$@" > {tmp_path / "make-ran"}\n',
    }
    for name, script in stand_ins.items():
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    return subprocess.run(
        [str(bin_dir / "bash"), str(repo / ".ci" / "run")],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_ci_fails_when_postgres_does_not_answer(tmp_path: Path) -> None:
    ran = _run_ci(tmp_path, postgres_answers=False)
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines() == [
        ".ci/run: FAIL: no PostgreSQL answers at 127.0.0.1:5432 (pg_isready); CI requires it"
    ]
    assert not (tmp_path / "make-ran").exists()


def test_ci_runs_make_test_when_postgres_answers(tmp_path: Path) -> None:
    ran = _run_ci(tmp_path, postgres_answers=True)
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "make-ran").read_text().split() == ["test"]
