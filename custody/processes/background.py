"""The background process: the checkpointer, the webhook runner and the broadcaster (connected
chains), and a final checkpoint.

The supervisor stops this process after the API and signer processes, so the final checkpoint
covers every entry they wrote: a clean stop leaves no ledger entry unsigned, and `custody ledger
verify` passes without waiting for the next start.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from custody.processes import children
from custody.settings import Settings

if TYPE_CHECKING:
    from custody.runtime import Runtime

log = logging.getLogger("custody.processes")
# How long the threads get to finish a round once asked to stop; a webhook POST in flight is
# cut off by its own timeout, and an unfinished delivery is tried again on the next start.
JOIN_SECONDS = 5.0


def main(role: str, settings: Settings, parent: int) -> None:
    children.enter(role, settings, parent)
    stop = threading.Event()
    children.stop_on_signals(stop)
    # From here a SIGTERM is a clean stop with a final checkpoint (before, it ends the process).
    log.info("background process running (checkpointer, webhooks, broadcaster)")
    from custody.broadcast.runner import start_broadcaster
    from custody.freezes.breakers import freeze_on_fork
    from custody.ledger.checkpointer import start_checkpointer
    from custody.runtime import Runtime
    from custody.webhooks.runner import start_webhooks

    runtime = Runtime(settings)
    try:
        threads = [
            start_checkpointer(runtime, stop, on_fork=freeze_on_fork),
            start_webhooks(runtime, stop),
            start_broadcaster(runtime, stop),
        ]
        while not stop.wait(1.0):
            pass
        for thread in threads:
            if thread is not None:
                thread.join(timeout=JOIN_SECONDS)
        if settings.checkpoint_interval_seconds > 0:
            final_checkpoint(runtime)
    finally:
        runtime.close()
        children.leave()


def final_checkpoint(runtime: Runtime) -> None:
    from custody.errors import CustodyError
    from custody.freezes.breakers import freeze_on_fork
    from custody.ledger.checkpoints import make_checkpoint, runtime_identity
    from custody.ledger.forks import ForkDetected

    try:
        made = make_checkpoint(
            runtime.db, runtime.token(), runtime_identity(runtime), on_fork=freeze_on_fork
        )
    except ForkDetected as fork:
        log.critical("LEDGER FORK DETECTED, no final checkpoint signed: %s", fork.message)
    except CustodyError as exc:
        log.warning("final checkpoint not signed: %s", exc.message)
    else:
        if made is not None:
            log.info("final checkpoint at size %d", made.tree_size)
