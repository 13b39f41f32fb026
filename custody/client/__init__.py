"""custody's client SDK: sign each call, create and wait for requests, verify webhooks.

    from custody.client import Client

    with Client.from_files("http://127.0.0.1:8000", "var/demo/client-id",
                           "var/demo/client-private.pem") as custody:
        request = custody.create({...})
        print(custody.wait(request.id, until="signed").result)

It needs only httpx, PyJWT and cryptography: none of the server's packages (an import-linter
contract in pyproject.toml keeps it so).
"""

from custody.client.asynchronous import AsyncClient
from custody.client.calls import Call, RetryPolicy
from custody.client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    CustodyAPIError,
    CustodyClientError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
    WaitTimedOut,
    WebhookVerificationFailed,
)
from custody.client.models import FINAL_STATUSES, Request, RequestPage, WebhookPublicKey
from custody.client.sync import Client
from custody.client.tokens import call_claims, load_private_key, sign_call
from custody.client.webhooks import verify_webhook

__all__ = [
    "FINAL_STATUSES",
    "AsyncClient",
    "BadRequest",
    "Call",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "CustodyAPIError",
    "CustodyClientError",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "Request",
    "RequestPage",
    "RetryPolicy",
    "Unauthorized",
    "Unavailable",
    "WaitTimedOut",
    "WebhookPublicKey",
    "WebhookVerificationFailed",
    "call_claims",
    "load_private_key",
    "sign_call",
    "verify_webhook",
]
