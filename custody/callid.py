"""The id of the HTTP call being served (`X-Request-Id`), for its log lines, the request it
creates (ledger entry and webhooks) and the answer.

"Call", not "request": a custody request (`req_…`) is a withdrawal or a trade, and one HTTP call
may create one, or read many. The id lives in a context variable, so every log line written
while the call is served carries it, from the event loop and from the worker threads the
endpoints run in (asyncio tasks and anyio's threads copy the context they start from).
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar, Token

HEADER = "X-Request-Id"
MAX_LENGTH = 128
# What a caller's id may be made of: the usual UUIDs, ULIDs, hex and trace ids. Nothing that
# could break a log line, a header or a ledger reader: the id is written into all three.
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=/-]*")

_current: ContextVar[str | None] = ContextVar("custody_http_call_id", default=None)


def new() -> str:
    """A fresh id: 128 random bits in hex, like a UUID without the dashes."""
    return secrets.token_hex(16)


def sane(value: str | None) -> bool:
    return value is not None and len(value) <= MAX_LENGTH and _SANE.fullmatch(value) is not None


def choose(offered: str | None) -> str:
    """The caller's id when it is sane (so its logs and ours name one call), else a new one."""
    return offered if offered is not None and sane(offered) else new()


def current() -> str | None:
    """The id of the call being served in this context; None outside any HTTP call."""
    return _current.get()


def bind(call_id: str) -> Token[str | None]:
    return _current.set(call_id)


def unbind(token: Token[str | None]) -> None:
    _current.reset(token)
