"""One log format for every process of the tree, naming the process it came from.

Every process writes to the stderr it inherited from the supervisor, so one journal (systemd,
`docker logs`, `kubectl logs`) holds the lines of all of them, in order.
"""

from __future__ import annotations

import logging


def configure(role: str) -> None:
    """Log INFO and above to stderr as `time LEVEL [role] logger: message`."""
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s [{role}] %(name)s: %(message)s",
        force=True,  # a child may have imported something that configured logging
    )
    # httpx logs every request at INFO: the broadcaster asks chain nodes several times a
    # second, which would drown everything else. Its failures reach our own loggers.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def adopt_uvicorn() -> None:
    """uvicorn installs its own handlers and format when configured; send its lines through
    ours instead, so they carry the role too (its levels stay as ServerConfig set them)."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
