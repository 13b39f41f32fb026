"""Signs a checkpoint every few seconds while entries arrive (in `serve` and `worker`)."""

from __future__ import annotations

import logging
import threading

from custody.errors import CustodyError
from custody.ledger.checkpoints import make_checkpoint, runtime_identity
from custody.runtime import Runtime

log = logging.getLogger("custody.ledger")


def run_checkpointer(runtime: Runtime, stop: threading.Event) -> None:
    interval = runtime.settings.checkpoint_interval_seconds
    ident = None
    while not stop.wait(interval):
        try:
            ident = ident or runtime_identity(runtime)
            made = make_checkpoint(runtime.db, runtime.token(), ident)
            if made is not None:
                log.debug("checkpoint at size %d", made.tree_size)
        except CustodyError as exc:
            log.warning("checkpoint not signed: %s", exc.message)
        except Exception:
            log.exception("checkpointer error")


def start_checkpointer(runtime: Runtime, stop: threading.Event) -> threading.Thread | None:
    if runtime.settings.checkpoint_interval_seconds <= 0:
        return None
    thread = threading.Thread(
        target=run_checkpointer, args=(runtime, stop), name="checkpointer", daemon=True
    )
    thread.start()
    return thread
