"""What the web app refuses, each with its HTTP status (rendered as a page or problem+json)."""

from __future__ import annotations

from custody.errors import CustodyError, Forbidden, NotFound, Unauthorized


class SignInRequired(Unauthorized):
    """No valid session: pages redirect to the sign-in page, JSON endpoints answer 401."""

    title = "Please sign in"
    slug = "sign-in-required"


class CsrfRefused(Forbidden):
    title = "Request refused"
    slug = "csrf-refused"


class PasskeyRefused(CustodyError):
    status = 401
    title = "Passkey not accepted"
    slug = "passkey-refused"


class InviteInvalid(CustodyError):
    status = 410
    title = "Enrolment link not valid"
    slug = "invite-invalid"


class RequestHidden(NotFound):
    """Someone else's request: indistinguishable from a missing one."""

    slug = "request-not-found"
