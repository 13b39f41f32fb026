"""One log format for every process of the tree, naming the process it came from.

Every process writes to the stderr it inherited from the supervisor, so one journal (systemd,
`docker logs`, `kubectl logs`) holds the lines of all of them, in order. `CUSTODY_LOG_FORMAT`
chooses text, for a person at a terminal, or JSON lines, for a log collector; either way a line
written while an HTTP call is served carries that call's id (custody.callid), the one its
answer's `X-Request-Id` header, the request it created and that request's webhooks carry.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from custody import callid
from custody.settings import LogFormat

TEXT_FORMAT = "%(asctime)s %(levelname)s [{role}] %(name)s: %(message)s"


class CallIdFilter(logging.Filter):
    """Stamps each record with the id of the HTTP call it was written in (None outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = callid.current()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__(TEXT_FORMAT.format(role=role))

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802  (logging's name)
        line = super().formatMessage(record)
        call = getattr(record, "request_id", None)
        # On the message's own line, before any traceback, so `grep` finds the whole call.
        return f"{line} request_id={call}" if call else line


class JsonFormatter(logging.Formatter):
    """One JSON object a line: `time` (RFC 3339 UTC), `level`, `process` (the role), `pid`,
    `logger`, `message`, `request_id` when written in an HTTP call, `exception` with its
    traceback."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "process": self.role,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        call = getattr(record, "request_id", None)
        if call:
            line["request_id"] = call
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # A message may hold anything a driver said: never let a line fail, never split it.
        return json.dumps(line, ensure_ascii=False, default=str)


def handler(role: str, log_format: LogFormat = LogFormat.TEXT) -> logging.Handler:
    """A stderr handler writing `role`'s lines in `log_format`."""
    out = logging.StreamHandler()
    out.addFilter(CallIdFilter())
    out.setFormatter(JsonFormatter(role) if log_format is LogFormat.JSON else TextFormatter(role))
    return out


def configure(role: str, log_format: LogFormat = LogFormat.TEXT) -> None:
    """Log INFO and above to stderr, as `time LEVEL [role] logger: message` or JSON lines."""
    logging.basicConfig(
        level=logging.INFO,
        handlers=[handler(role, log_format)],
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
