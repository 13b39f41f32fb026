"""Running a coroutine in a test: in an event loop of its own, on a thread of its own.

`asyncio.run` refuses to start while the calling thread already runs a loop, and the suite's
main thread may run Playwright's (the approver app tests keep a browser for the session).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run(scenario: Callable[[], Coroutine[Any, Any, T]], timeout: float = 120) -> T:
    """`scenario()` to completion, whatever loop this thread runs; its exceptions propagate."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(scenario())).result(timeout=timeout)
