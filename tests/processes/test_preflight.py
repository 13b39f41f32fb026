"""A token that cannot be used stops `custody serve` and `custody worker` before they bind or
start anything: one line saying why, exit 2, no traceback, no port, no child."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from custody.hsm import ensure_dev_token
from tests.e2e.process import clean_env, run_custody
from tests.processes.tree import free_port

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_wrong_pin_stops_before_anything_starts(tmp_path: Path, command: str) -> None:
    # A token of this test's own: failed logins are counted on the token that saw them.
    token = ensure_dev_token(tmp_path / "hsm", label="wrong-pin")
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    env = clean_env(
        home,
        SOFTHSM2_CONF=str(token.conf_path),
        CUSTODY_HSM_MODULE=token.module_path,
        CUSTODY_HSM_TOKEN=token.label,
        CUSTODY_HSM_PIN="000000-not-the-pin",
    )
    port = free_port()
    argv = {
        "serve": ["serve", "--host", "127.0.0.1", "--port", str(port)],
        "worker": ["worker", "--processes", "2"],
    }[command]

    done = run_custody(argv, env, timeout=60)

    assert done.returncode == 2, done
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "PIN" in lines[0]
    assert "wrong-pin" in lines[0]  # names the token
    assert "000000-not-the-pin" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr + done.stdout
    assert not (home / "run").exists()  # no doorbell: no signer was ever going to start
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))
