"""The guard that leaves `Request.status` to the lifecycle alone.

Installed on the model itself (custody.store.models), so it holds in every process that can
touch a request, whether or not it imported the lifecycle.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import InstrumentedAttribute

_writing: ContextVar[bool] = ContextVar("custody_lifecycle_writing", default=False)


@contextmanager
def lifecycle_writes() -> Iterator[None]:
    """Only custody.requests.lifecycle enters this."""
    token = _writing.set(True)
    try:
        yield
    finally:
        _writing.reset(token)


def guard(attribute: InstrumentedAttribute[str]) -> None:
    @event.listens_for(attribute, "set", propagate=True)
    def _refuse(target: object, value: object, old: object, initiator: Any) -> None:
        if not _writing.get():
            raise RuntimeError(
                "Request.status is written only by custody.requests.lifecycle (create or move)"
            )
