"""An API process: uvicorn serving the app on the socket the supervisor bound."""

from __future__ import annotations

import socket
import sys
import threading

from custody import wakeup
from custody.processes import children, logs
from custody.settings import Settings

NOT_STARTED_EXIT = 3  # uvicorn's own exit status for a server that could not start


def main(role: str, settings: Settings, parent: int, listener: socket.socket) -> None:
    children.enter(role, settings, parent)
    # uvicorn handles SIGTERM and SIGINT itself while it serves (a graceful stop), then raises
    # the signal again against the handlers it found: these, which make that stop exit 0, and
    # before uvicorn starts keep a stop asked for while the app is built.
    stopped = threading.Event()
    children.stop_on_signals(stopped)
    from custody.app import create_app
    from custody.chains.evm.eip1559 import load_encoder
    from custody.http.serving import ServerConfig, run
    from custody.runtime import Runtime

    load_encoder()  # before serving: intake builds a transaction for every EVM request
    runtime = Runtime(settings)
    # Status changes made by the signers and the other API processes wake this one's long polls.
    bell = wakeup.Doorbell.bind(settings.home, wakeup.Kind.WATCHER)
    if bell is not None:
        wakeup.watch(bell.sock, runtime.changes, stopped)
    try:
        # Never a signer here: an HSM call holds the GIL, and the API must keep answering.
        app = create_app(runtime, run_worker=False)
        host, port = listener.getsockname()[:2]
        config = ServerConfig(app, settings, host=host, port=port)
        logs.adopt_uvicorn()
        if stopped.is_set():
            return
        started = run(config, sockets=[listener])
    finally:
        if bell is not None:
            bell.close()
        runtime.close()
        children.leave()
    if not started:
        sys.exit(NOT_STARTED_EXIT)
