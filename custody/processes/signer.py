"""A signer process: the signer worker loop, woken through the doorbell (custody.wakeup)."""

from __future__ import annotations

import socket
import threading

from custody import wakeup
from custody.processes import children
from custody.settings import Settings


def main(role: str, settings: Settings, parent: int, doorbell: socket.socket | None) -> None:
    children.enter(role, settings, parent)
    stop = threading.Event()
    children.stop_on_signals(stop)
    from custody.runtime import Runtime
    from custody.signing.worker import SignerWorker

    runtime = Runtime(settings)
    worker = SignerWorker(runtime)
    children.stop_on_signals(stop, worker.wake)  # an idle worker waits on `wake`
    if doorbell is not None:
        wakeup.relay(doorbell, worker.wake, stop)
    try:
        worker.run(stop)
    finally:
        runtime.close()
        children.leave()
