"""A child whose supervisor is gone stops on its own.

A supervisor killed with SIGKILL cannot stop its children, and children left running would go on
signing with nobody to stop or restart them, and block the next supervisor's port. Two guards:
on Linux the kernel sends the child SIGTERM when its parent (the fork server, which exits with
the supervisor) dies (PR_SET_PDEATHSIG); everywhere a thread notices that the parent changed or
that the supervisor is gone. Either way the child stops as on a SIGTERM, and if it has
not stopped after `grace` seconds (an HSM call that never returns) it exits at once.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger("custody.processes")

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
POLL_SECONDS = 0.5
ORPHANED_EXIT = 75  # EX_TEMPFAIL: nothing is wrong with this process, its supervisor is gone


def stop_with_parent(supervisor: int, grace: float) -> None:
    """Stop this process when its `supervisor` (pid) is gone.

    The process that forked this one is the supervisor's fork server (custody.processes
    .supervisor), which exits as soon as the supervisor does: the kernel's signal comes when it
    exits, and the watch looks at both.
    """
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    # Checked after prctl: a parent that died before it was called sent no signal.
    threading.Thread(
        target=_watch, args=(parent, supervisor, grace), name="orphan-watch", daemon=True
    ).start()


def _watch(parent: int, supervisor: int, grace: float) -> None:
    while os.getppid() == parent and _alive(supervisor):
        time.sleep(POLL_SECONDS)
    log.warning("supervisor (pid %d) is gone: stopping", supervisor)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace)
    log.error("still running %.0f s after the supervisor died: exiting now", grace)
    os._exit(ORPHANED_EXIT)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone's process, alive: not ours to judge
    return True
