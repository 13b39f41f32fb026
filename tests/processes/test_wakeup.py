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
        assert wakeup.ring(home, wakeup.Kind.WATCHER, {"req_b", "req_a"}) == 1
        assert wakeup.ring(home, wakeup.Kind.SIGNER, {"req_a"}) == 1
        # Each got exactly its own datagram: the watcher the ids, the signer its byte.
        for bell, datagram in ((watcher, b"req_a\nreq_b\n"), (doorbell, b"\x01")):
            assert bell.sock.recv(wakeup.MAX_DATAGRAM, socket.MSG_DONTWAIT) == datagram
            with pytest.raises(BlockingIOError):
                bell.sock.recv(16, socket.MSG_DONTWAIT)
    finally:
        watcher.close()


def test_a_change_between_the_ticket_and_the_wait_is_not_missed() -> None:
    async def scenario() -> tuple[bool, bool, int]:
        changes = wakeup.Changes()
        early = changes.ticket("req_a")
        changes.changed({"req_a"})  # committed after the poll took its ticket, before it waits
        late = changes.ticket("req_a")
        woken_early = await early.wait(5)
        # From another thread, as a relay thread or a committing worker thread sets it.
        threading.Timer(0.05, changes.changed, [{"req_a"}]).start()
        woken_late = await late.wait(5)
        return woken_early, woken_late, changes.waiting

    assert loops.run(scenario) == (True, True, 0)


def test_a_ticket_nobody_sets_ends_at_its_timeout() -> None:
    async def scenario() -> tuple[bool, int]:
        changes = wakeup.Changes()
        return await changes.ticket("req_a").wait(0.05), changes.waiting

    assert loops.run(scenario) == (False, 0)


def test_a_change_wakes_the_polls_on_its_requests_only() -> None:
    async def scenario() -> tuple[bool, bool, bool, int]:
        changes = wakeup.Changes()
        a, b, b_too = changes.ticket("req_a"), changes.ticket("req_b"), changes.ticket("req_b")
        changes.changed({"req_b", "req_c"})
        return await a.wait(0.05), await b.wait(5), await b_too.wait(5), changes.waiting

    assert loops.run(scenario) == (False, True, True, 0)


def test_a_change_that_cannot_say_which_wakes_every_poll() -> None:
    async def scenario() -> tuple[bool, bool, int]:
        changes = wakeup.Changes()
        a, b = changes.ticket("req_a"), changes.ticket("req_b")
        changes.changed(None)
        return await a.wait(5), await b.wait(5), changes.waiting

    assert loops.run(scenario) == (True, True, 0)


def test_a_watcher_datagram_names_the_changed_requests() -> None:
    datagram = wakeup.watcher_datagram({"req_b", "req_a"})
    assert datagram == b"req_a\nreq_b\n"
    assert wakeup.changed_requests(datagram) == {"req_a", "req_b"}


@pytest.mark.parametrize(
    "changed",
    [
        set(),  # nothing named: every poll
        {f"req_{n:024x}" for n in range(100)},  # more than fit one datagram
        {"req_a", "req a"},  # a space, which no request id has
        {"req_a", "req\nb"},  # a newline would read as two ids
        {"req_é"},
        {"r" * 65},
    ],
    ids=["none", "too many", "space", "newline", "not ascii", "too long"],
)
def test_changes_a_datagram_cannot_name_wake_every_poll(changed: set[str]) -> None:
    assert wakeup.watcher_datagram(changed) == wakeup.WAKE_ALL


@pytest.mark.parametrize(
    "datagram",
    [
        b"",  # the probe of a process binding its socket
        b"\x01",  # one byte: the doorbell as it was, and what a list too long becomes
        b"req_a\nreq_",  # cut short
        b"req_a\n\n",  # an empty id
        b"\n",
        b"req_a\nreq b\n",
        b"req_\xff\n",
        b"req_a\n" * 200,  # longer than any datagram a watcher is sent
    ],
    ids=["empty", "one byte", "cut short", "empty id", "newline", "space", "not ascii", "too long"],
)
def test_a_datagram_that_is_no_list_of_ids_names_none(datagram: bytes) -> None:
    assert wakeup.changed_requests(datagram) is None


def test_a_watcher_wakes_the_polls_a_datagram_names_and_all_for_one_it_cannot_read(
    home: Path,
) -> None:
    watcher = Doorbell.bind(home, wakeup.Kind.WATCHER)
    assert watcher is not None
    stop = threading.Event()
    changes = wakeup.Changes()
    thread = wakeup.watch(watcher.sock, changes, stop)

    async def scenario() -> tuple[bool, ...]:
        a, b = changes.ticket("req_a"), changes.ticket("req_b")
        assert wakeup.ring(home, wakeup.Kind.WATCHER, {"req_b"}) == 1
        b_woken = await b.wait(5)
        a_woken_by_b = await a.wait(0.2)
        a, b = changes.ticket("req_a"), changes.ticket("req_b")
        assert wakeup.ring(home, wakeup.Kind.WATCHER) == 1  # naming none
        a_woken_by_none, b_woken_by_none = await a.wait(5), await b.wait(5)
        a = changes.ticket("req_a")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"req_b\n\xff garbage", str(watcher.path))
        a_woken_by_garbage = await a.wait(5)
        # The relay lives on: the next datagram, long or not, is heard as before.
        a, b = changes.ticket("req_a"), changes.ticket("req_b")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"req_b\n" * 1000, str(watcher.path))
        a_woken_by_long, b_woken_by_long = await a.wait(5), await b.wait(5)
        a = changes.ticket("req_a")
        assert wakeup.ring(home, wakeup.Kind.WATCHER, {"req_a"}) == 1
        a_woken_by_a = await a.wait(5)
        return (
            b_woken,
            a_woken_by_b,
            a_woken_by_none,
            b_woken_by_none,
            a_woken_by_garbage,
            a_woken_by_long,
            b_woken_by_long,
            a_woken_by_a,
        )

    try:
        assert loops.run(scenario) == (True, False, True, True, True, True, True, True)
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(10)
        watcher.close()
    assert changes.waiting == 0


def test_a_watcher_whose_queue_was_full_is_sent_wake_all_next(home: Path) -> None:
    """Its queued datagrams name other requests than the one it missed: the next ring, whatever
    it names, wakes every poll there; the ring after names its requests again."""
    watcher = Doorbell.bind(home, wakeup.Kind.WATCHER)
    assert watcher is not None
    try:
        while wakeup.ring(home, wakeup.Kind.WATCHER, {"req_a"}):
            pass  # nobody reads: the queue fills
        assert wakeup.ring(home, wakeup.Kind.WATCHER, {"req_b"}) == 0  # req_b's change is lost
        while True:
            try:
                assert watcher.sock.recv(wakeup.MAX_DATAGRAM, socket.MSG_DONTWAIT) == b"req_a\n"
            except BlockingIOError:
                break
        assert wakeup.ring(home, wakeup.Kind.WATCHER, {"req_c"}) == 1
        assert wakeup.ring(home, wakeup.Kind.WATCHER, {"req_c"}) == 1
        received = [watcher.sock.recv(wakeup.MAX_DATAGRAM, socket.MSG_DONTWAIT) for _ in "12"]
        assert received == [wakeup.WAKE_ALL, b"req_c\n"]
    finally:
        watcher.close()
