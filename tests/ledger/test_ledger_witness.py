"""Publishing checkpoints to an HTTP witness, and the in-process checkpointer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from custody.errors import Unavailable
from custody.ledger import service as ledger
from custody.ledger.checkpointer import start_checkpointer
from custody.ledger.checkpoints import latest_checkpoint, runtime_identity
from custody.ledger.events import EventKind
from custody.ledger.publish import publish
from custody.ledger.verify import parse_checkpoint, parse_verifier_key
from custody.runtime import Runtime
from tests.support.installation import Installation


class Witness(BaseHTTPRequestHandler):
    received: ClassVar[list[str]] = []
    status: ClassVar[int] = 201

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).received.append(self.rfile.read(length).decode())
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def witness() -> Iterator[str]:
    Witness.received = []
    Witness.status = 201
    server = ThreadingHTTPServer(("127.0.0.1", 0), Witness)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/witness"
    server.shutdown()
    server.server_close()


def test_checkpointer_signs_while_entries_arrive_and_http_witness_gets_them(
    installation: Installation, witness: str
) -> None:
    # A runtime of its own with a short interval: the shared installation's settings stay as they
    # are (they are frozen, and other tests' servers read them).
    rt = Runtime(installation.settings.model_copy(update={"checkpoint_interval_seconds": 0.05}))
    stop = threading.Event()
    try:
        thread = start_checkpointer(rt, stop, on_fork=None)
        assert thread is not None
        try:
            with rt.db.write() as session:
                ledger.append(session, EventKind.LEDGER_INITIALISED, "test", {"witness": "yes"})
                size = ledger.size(session) + 1  # this entry commits with the transaction
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with rt.db.read() as session:
                    latest = latest_checkpoint(session)
                if latest is not None and latest.tree_size >= size:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("no checkpoint was signed for the new entry")
        finally:
            stop.set()
            thread.join(timeout=30)

        key = parse_verifier_key(runtime_identity(rt).verifier_key)
        sent = publish(rt.db, witness)
        assert sent >= 1
        assert all(parse_checkpoint(note, key) for note in Witness.received)
        assert max(parse_checkpoint(n, key).size for n in Witness.received) >= size
        assert publish(rt.db, witness) == 0  # each checkpoint goes to a target once
    finally:
        rt.close()


def test_an_unreachable_or_refusing_witness_is_a_clear_error(
    installation: Installation, witness: str
) -> None:
    with pytest.raises(Unavailable, match="unreachable"):
        publish(installation.runtime.db, "http://127.0.0.1:9/nothing-listens-here")
    Witness.status = 500
    with pytest.raises(Unavailable, match="answered 500"):
        publish(installation.runtime.db, witness + "-refusing")
