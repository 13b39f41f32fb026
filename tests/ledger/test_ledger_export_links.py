"""`custody ledger export DIR` into a folder someone else prepared: a symbolic link planted at
any name the export writes never makes it write elsewhere (e.g. over `/etc/…`); a link at an
export file's name, or the folder itself a link, is refused with one line and nothing written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from custody.ledger.verify import verify_export
from tests.support.cli import CliResult, invoke
from tests.support.installation import Installation

# What the export writes (DESIGN.md, "Ledger format").
FILES = [
    "entries.jsonl",
    "checkpoints.jsonl",
    "checkpoint",
    "verifier-key",
    "verifier-keys.json",
]
PRECIOUS = b"precious: must never be overwritten\n"
# The temporary names the export used to write to before renaming them into place.
OLD_TEMPORARIES = ["entries.tmp", "checkpoints.jsonl.tmp", "checkpoint.tmp", "verifier-key.tmp"]


def _export(installation: Installation, folder: Path) -> CliResult:
    return invoke(["ledger", "export", str(folder)], installation.env)


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.write_bytes(PRECIOUS)
    return victim


def _refused(result: CliResult, *words: str) -> None:
    assert result.returncode == 1, result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("name", FILES)
def test_a_link_at_an_export_file_is_refused_and_nothing_is_written(
    installation: Installation, tmp_path: Path, name: str
) -> None:
    victim = _victim(tmp_path)
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / name).symlink_to(victim)
    _refused(_export(installation, folder), str(folder / name), "symbolic link")
    assert victim.read_bytes() == PRECIOUS
    assert [p.name for p in folder.iterdir()] == [name]
    assert (folder / name).is_symlink()


@pytest.mark.parametrize("name", OLD_TEMPORARIES)
def test_a_link_at_a_predictable_temporary_name_is_never_followed(
    installation: Installation, tmp_path: Path, name: str
) -> None:
    victim = _victim(tmp_path)
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / name).symlink_to(victim)
    result = _export(installation, folder)
    assert victim.read_bytes() == PRECIOUS
    assert result.returncode == 0, result.stderr
    assert verify_export(folder).ok
    assert not any(p.name.endswith(".tmp") for p in folder.iterdir() if p.name != name)


def test_a_folder_that_is_a_link_is_refused(installation: Installation, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = tmp_path / "export"
    folder.symlink_to(elsewhere)
    _refused(_export(installation, folder), str(folder), "symbolic link")
    assert list(elsewhere.iterdir()) == []


def test_a_second_export_into_the_same_folder_replaces_the_files(
    installation: Installation, tmp_path: Path
) -> None:
    folder = tmp_path / "export"
    assert _export(installation, folder).returncode == 0
    (folder / "checkpoint").write_text("stale\n")
    result = _export(installation, folder)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    assert verify_export(folder).ok
