"""Dependencies of the web routes: the runtime, the signed-in approver (and their rate limit),
CSRF for JSON posts."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request

from custody.http.deps import runtime
from custody.http.ratelimit import RateLimitsDep
from custody.runtime import Runtime
from custody.web import sessions
from custody.web.errors import SignInRequired
from custody.web.sessions import SignedIn

CSRF_HEADER = "X-CSRF-Token"
MAX_FORM_BYTES = 16 * 1024


def optional_user(
    request: Request, rt: Annotated[Runtime, Depends(runtime)], limits: RateLimitsDep
) -> SignedIn | None:
    """The approver whose session cookie came with the call, charged to their rate limit (before
    the route opens any write transaction)."""
    token = request.cookies.get(sessions.COOKIE_NAME)
    if not token:
        return None
    with rt.db.read() as session:
        user = sessions.lookup(session, token)
    if user is not None:
        limits.admit_approver(user.approver_id)
    return user


def signed_in(user: Annotated[SignedIn | None, Depends(optional_user)]) -> SignedIn:
    if user is None:
        raise SignInRequired("please sign in with your passkey")
    return user


def posting(request: Request, user: Annotated[SignedIn, Depends(signed_in)]) -> SignedIn:
    """A signed-in JSON POST: the CSRF token must come in its header."""
    sessions.require_csrf(user, request.headers.get(CSRF_HEADER))
    return user


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form body (the only kind the pages send), first value of each field."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    fields: dict[str, str] = {}
    for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(key, value)
    return fields


RuntimeDep = Annotated[Runtime, Depends(runtime)]
MaybeUser = Annotated[SignedIn | None, Depends(optional_user)]
UserDep = Annotated[SignedIn, Depends(signed_in)]
PostingUser = Annotated[SignedIn, Depends(posting)]
FormDep = Annotated[dict[str, str], Depends(form_fields)]
