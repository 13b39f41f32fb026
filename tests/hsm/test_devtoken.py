"""The development token set-up: idempotent, private PIN file, clear labelling."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from custody.hsm import HsmError, ensure_dev_token, find_softhsm_module, read_pin_file
from custody.hsm.devtoken import CONF_TEMPLATE, SOFTHSM_MODULE_CANDIDATES

REPO = Path(__file__).resolve().parents[2]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_ensure_is_idempotent_and_keeps_the_pins(tmp_path: Path) -> None:
    environ_before = dict(os.environ)
    first = ensure_dev_token(tmp_path / "hsm", label="idem")
    pins = json.loads(first.pin_file.read_text())
    second = ensure_dev_token(tmp_path / "hsm", label="idem")
    assert second == first
    assert json.loads(second.pin_file.read_text()) == pins
    assert pins["user_pin"] != pins["so_pin"]
    assert len(pins["user_pin"]) >= 24
    assert dict(os.environ) == environ_before  # activation is a separate, explicit step


def test_pin_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        token = ensure_dev_token(tmp_path / "hsm", label="umask")
    finally:
        os.umask(previous)
    assert _mode(token.pin_file) == 0o600
    assert _mode(tmp_path / "hsm") == 0o700
    assert read_pin_file(token.pin_file) == json.loads(token.pin_file.read_text())["user_pin"]


def test_folder_is_labelled_development_only(tmp_path: Path) -> None:
    token = ensure_dev_token(tmp_path / "hsm", label="readme")
    readme = (tmp_path / "hsm" / "README-DEVELOPMENT-ONLY.txt").read_text()
    assert "DEVELOPMENT ONLY" in readme
    assert "CUSTODY_HSM_MODULE" in readme
    conf = token.conf_path.read_text()
    assert f"directories.tokendir = {(tmp_path / 'hsm' / 'tokens').resolve()}" in conf
    assert "library.reset_on_fork = true" in conf


def test_conf_matches_the_published_template() -> None:
    template = (REPO / "hsm" / "softhsm2.conf.template").read_text()
    assert template.replace("@TOKENDIR@", "/x") == CONF_TEMPLATE.format(tokendir="/x")


def test_token_without_its_pins_file_is_not_silently_replaced(tmp_path: Path) -> None:
    token = ensure_dev_token(tmp_path / "hsm", label="lost")
    token.pin_file.unlink()
    with pytest.raises(HsmError, match=r"pins\.json is missing"):
        ensure_dev_token(tmp_path / "hsm", label="lost")


def test_pins_file_of_another_token_is_refused(tmp_path: Path) -> None:
    ensure_dev_token(tmp_path / "hsm", label="first")
    with pytest.raises(HsmError, match="belongs to dev token 'first'"):
        ensure_dev_token(tmp_path / "hsm", label="second")


def test_plain_pin_file(tmp_path: Path) -> None:
    path = tmp_path / "pin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"123456\n")
    os.close(fd)
    assert read_pin_file(path) == "123456"


def test_group_or_world_readable_pin_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pin"
    path.write_text("s3cret-pin\n")
    for mode in (0o644, 0o640, 0o604):
        path.chmod(mode)
        with pytest.raises(HsmError, match="chmod 600") as caught:
            read_pin_file(path)
        assert "s3cret-pin" not in str(caught.value)


@pytest.mark.parametrize("content", ["", "\n", "one\ntwo\n", "{}", '{"user_pin": 5}', "{bad"])
def test_malformed_pin_file_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "pin"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(HsmError):
        read_pin_file(path)


def test_invalid_token_label_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HsmError, match="invalid token label"):
        ensure_dev_token(tmp_path / "hsm", label="x" * 33)


def test_softhsm_module_is_found() -> None:
    module = find_softhsm_module()
    assert module in SOFTHSM_MODULE_CANDIDATES
    assert Path(module).is_file()
