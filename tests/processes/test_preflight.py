"""A token that cannot be used stops `custody serve` and `custody worker` before they bind or
start anything: one line saying why, exit 2, no traceback, no port, no child. A port that is
taken stops `custody serve` the same way (exit 3)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from custody.hsm import ensure_dev_token, read_pin_file
from tests.e2e.process import clean_env, custody_env, run_custody
from tests.support.installation import Installation
from tests.support.tree import free_port

pytestmark = pytest.mark.slow


def test_a_wrong_pin_stops_before_anything_starts(tmp_path: Path) -> None:
    # A token of this test's own: failed logins are counted on the token that saw them.
    token = ensure_dev_token(tmp_path / "hsm", label="wrong-pin")
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    named = {
        "SOFTHSM2_CONF": str(token.conf_path),
        "CUSTODY_HSM_MODULE": token.module_path,
        "CUSTODY_HSM_TOKEN": token.label,
    }
    right = clean_env(home, **named, CUSTODY_HSM_PIN=read_pin_file(token.pin_file))
    assert run_custody(["init"], right, timeout=120).returncode == 0
    env = clean_env(home, **named, CUSTODY_HSM_PIN="000000-not-the-pin")
    port = free_port()
    argv = {
        "serve": ["serve", "--host", "127.0.0.1", "--port", str(port)],
        "worker": ["worker", "--processes", "2"],
    }

    # Each command meets both a PIN the token refuses and the hold that refusal leaves; the
    # hold is lifted in between, so that the second refusal is the command's own.
    steps = [("serve", "refused"), ("worker", "held"), ("worker", "refused"), ("serve", "held")]
    for command, attempt in steps:
        if (command, attempt) == ("worker", "refused"):
            assert run_custody(["hsm", "rearm"], right, timeout=60).returncode == 0
        done = run_custody(argv[command], env, timeout=60)

        assert done.returncode == 2, done
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, done.stderr
        assert "PIN" in lines[0]
        assert "wrong-pin" in lines[0]  # names the token
        # A start after a refusal does not try the PIN again: the refusal holds every login
        # until an operator re-arms (a real HSM locks its PIN after a few failures).
        assert "custody hsm rearm" in lines[0]
        assert ("are held since" in lines[0]) == (attempt == "held"), (command, lines[0])
        assert "000000-not-the-pin" not in done.stderr + done.stdout
        assert "Traceback" not in done.stderr + done.stdout
        assert not (home / "run").exists()  # no doorbell: no signer was ever going to start
        with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", port))

    assert run_custody(["hsm", "rearm"], right, timeout=60).returncode == 0
    assert run_custody(["hsm", "status", "--json"], right, timeout=60).returncode == 0


def test_a_port_in_use_stops_serve_with_one_line(home: Installation) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_custody(
            ["serve", "--host", "127.0.0.1", "--port", str(port)],
            custody_env(home.env),
            timeout=60,
        )
    assert done.returncode == 3, done
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in lines[0]
    assert "custody serving" not in done.stdout


def test_connections_to_the_api_socket_are_sent_without_delay() -> None:
    """The supervisor's listening socket says TCP, so the connections accepted from it do too and
    asyncio turns Nagle's algorithm off on them (it looks at the socket's protocol); with Nagle
    on, every response written in two parts waited 40 ms for the client's delayed ACK."""
    from custody.processes.launch import listen

    with (
        listen("127.0.0.1", 0) as listener,
        socket.create_connection(listener.getsockname()[:2]),
    ):
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.proto == socket.IPPROTO_TCP
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
