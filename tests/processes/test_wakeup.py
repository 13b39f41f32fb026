"""The doorbell between API and signer processes (custody.wakeup), on real Unix sockets."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from custody import wakeup
from custody.wakeup import Doorbell
from tests.support import loops


@pytest.fixture
def home() -> Iterator[Path]:
    # Not tmp_path: a Unix socket path holds at most 107 bytes, and pytest's paths are long.
    short = Path(tempfile.mkdtemp(prefix="custody-wake-"))
    try:
        yield short
    finally:
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture
def doorbell(home: Path) -> Iterator[Doorbell]:
    bell = Doorbell.bind(home)
    assert bell is not None
    try:
        yield bell
    finally:
        bell.close()


def test_nobody_to_wake_is_not_an_error(home: Path) -> None:
    assert wakeup.ring(home) == 0


def test_a_ring_wakes_one_waiting_signer(home: Path, doorbell: Doorbell) -> None:
    wake, stop = threading.Event(), threading.Event()
    thread = wakeup.relay(doorbell.sock, wake, stop)
    try:
        assert wakeup.ring(home) == 1
        assert wake.wait(10)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_a_socket_left_by_a_dead_supervisor_is_skipped_then_removed(home: Path) -> None:
    run = home / "run"
    run.mkdir()
    stale, live = run / "signer-1.sock", run / "signer-2.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as dead:
        dead.bind(str(stale))  # closed at once: nobody reads it any more
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as other:
        other.bind(str(live))  # another supervisor's, alive
        assert wakeup.ring(home) == 1  # the live one only
        bell = Doorbell.bind(home)  # a new supervisor tidies up
        assert bell is not None
        try:
            assert not stale.exists()
            assert live.exists()
            assert wakeup.ring(home) == 2
        finally:
            bell.close()


def test_a_full_doorbell_never_blocks_the_caller(home: Path, doorbell: Doorbell) -> None:
    # No signer reads: the socket's buffer fills, and ringing goes on returning at once.
    for _ in range(5000):
        wakeup.ring(home)
    assert wakeup.ring(home) == 0


def test_watchers_and_signers_have_doorbells_of_their_own(home: Path, doorbell: Doorbell) -> None:
    watcher = Doorbell.bind(home, wakeup.Kind.WATCHER)
    assert watcher is not None
    try:
        assert watcher.path.name.startswith("watcher-")
        assert wakeup.ring(home, wakeup.Kind.WATCHER) == 1
        assert wakeup.ring(home, wakeup.Kind.SIGNER) == 1
        # Each got exactly its own byte.
        for bell in (watcher, doorbell):
            assert bell.sock.recv(16, socket.MSG_DONTWAIT) == b"\x01"
            with pytest.raises(BlockingIOError):
                bell.sock.recv(16, socket.MSG_DONTWAIT)
    finally:
        watcher.close()


def test_a_change_between_the_ticket_and_the_wait_is_not_missed() -> None:
    async def scenario() -> tuple[bool, bool, int]:
        changes = wakeup.Changes()
        early = changes.ticket()
        changes.set()  # committed after the poll took its ticket, before it waits
        late = changes.ticket()
        woken_early = await early.wait(5)
        # From another thread, as a relay thread or a committing worker thread sets it.
        threading.Timer(0.05, changes.set).start()
        woken_late = await late.wait(5)
        return woken_early, woken_late, changes.waiting

    assert loops.run(scenario) == (True, True, 0)


def test_a_ticket_nobody_sets_ends_at_its_timeout() -> None:
    async def scenario() -> tuple[bool, int]:
        changes = wakeup.Changes()
        return await changes.ticket().wait(0.05), changes.waiting

    assert loops.run(scenario) == (False, 0)
