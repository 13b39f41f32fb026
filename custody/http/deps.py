"""Dependencies both HTTP faces use: the process runtime and the exact body bytes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from custody.runtime import Runtime


# `async`, as every dependency that neither blocks nor computes for long: FastAPI runs a plain
# `def` dependency in a worker thread, a hand-off to and back from it for every call.
async def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def raw_body(request: Request) -> bytes:
    """The body exactly as sent: a client's token signs its SHA-256, strict JSON parses it."""
    return await request.body()


RuntimeDep = Annotated[Runtime, Depends(runtime)]
BodyDep = Annotated[bytes, Depends(raw_body)]
