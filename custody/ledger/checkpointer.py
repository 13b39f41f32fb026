"""Signs a checkpoint every few seconds while entries arrive (in `serve` and `worker`)."""

from __future__ import annotations

import logging
import threading
import time

from custody.errors import CustodyError
from custody.ledger.checkpoints import make_checkpoint, runtime_identity
from custody.ledger.forks import ForkDetected, ForkHook
from custody.runtime import Runtime

log = logging.getLogger("custody.ledger")


class ForkAlarm:
    """A fork is logged at CRITICAL when first seen and again every REPEAT seconds while it
    lasts: loud enough to page someone, without one line per interval burying everything else."""

    REPEAT = 60.0

    def __init__(self) -> None:
        self._last: tuple[str, float] | None = None

    def sound(self, fork: ForkDetected) -> None:
        now = time.monotonic()
        if self._last and self._last[0] == fork.message and now - self._last[1] < self.REPEAT:
            return
        self._last = (fork.message, now)
        log.critical(
            "LEDGER FORK DETECTED, no checkpoint signed: %s (kept in ledger_fork_detections; "
            "see docs/ledger.md)",
            fork.message,
        )


def run_checkpointer(runtime: Runtime, stop: threading.Event, on_fork: ForkHook | None) -> None:
    interval = runtime.settings.checkpoint_interval_seconds
    ident = None
    alarm = ForkAlarm()
    while not stop.wait(interval):
        try:
            ident = ident or runtime_identity(runtime)
            made = make_checkpoint(runtime.db, runtime.token(), ident, on_fork=on_fork)
            if made is not None:
                log.debug("checkpoint at size %d", made.tree_size)
        except ForkDetected as fork:
            alarm.sound(fork)
        except CustodyError as exc:
            log.warning("checkpoint not signed: %s", exc.message)
        except Exception:
            log.exception("checkpointer error")


def start_checkpointer(
    runtime: Runtime, stop: threading.Event, *, on_fork: ForkHook | None
) -> threading.Thread | None:
    """`on_fork`: what a new fork detection does besides being recorded (the processes pass the
    freeze of custody.freezes.breakers; the ledger cannot import it)."""
    if runtime.settings.checkpoint_interval_seconds <= 0:
        return None
    thread = threading.Thread(
        target=run_checkpointer, args=(runtime, stop, on_fork), name="checkpointer", daemon=True
    )
    thread.start()
    return thread
