"""Errors of the chains domain: bad payloads (the caller's fault) and bad signatures (ours)."""

from __future__ import annotations

from custody.errors import CustodyError, ValidationFailed


class InvalidPayload(ValidationFailed):
    """A value or transaction field that cannot be signed as given."""

    title = "Invalid payload"
    slug = "invalid-payload"


class SignatureMismatch(CustodyError):  # named for what happened, like its siblings
    """A signature that does not verify in software.

    The HSM produced it, so this is a server fault (500), never the client's: the signature is
    withheld and the request fails closed.
    """

    status = 500
    title = "Signature verification failed"
    slug = "signature-mismatch"
