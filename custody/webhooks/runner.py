"""The webhook thread of `custody serve` and `custody worker`: dispatch, then deliver, repeat."""

from __future__ import annotations

import logging
import threading

import httpx

from custody.errors import CustodyError
from custody.runtime import Runtime
from custody.webhooks.deliverer import DeliveryPolicy, deliver_due
from custody.webhooks.dispatcher import dispatch_all
from custody.webhooks.signing import BodySigner

log = logging.getLogger("custody.webhooks")


def policy_of(runtime: Runtime) -> DeliveryPolicy:
    settings = runtime.settings
    return DeliveryPolicy(
        max_attempts=settings.webhook_max_attempts,
        timeout_seconds=settings.webhook_timeout_seconds,
    )


def run_once(
    runtime: Runtime,
    signer: BodySigner,
    *,
    http: httpx.Client | None = None,
    stop: threading.Event | None = None,
) -> int:
    """One round: queue what the ledger calls for, then attempt what is due."""
    dispatch_all(runtime.db)
    return deliver_due(runtime.db, signer, policy_of(runtime), http=http, stop=stop)


def run_webhooks(runtime: Runtime, stop: threading.Event) -> None:
    signer = BodySigner(runtime)
    interval = runtime.settings.webhook_poll_seconds
    with httpx.Client(follow_redirects=False) as http:
        while not stop.wait(interval):
            try:
                run_once(runtime, signer, http=http, stop=stop)
            except CustodyError as exc:
                log.warning("webhooks: %s", exc.message)
            except Exception:
                log.exception("webhook runner error")


def start_webhooks(runtime: Runtime, stop: threading.Event) -> threading.Thread | None:
    if runtime.settings.webhook_poll_seconds <= 0:
        return None
    thread = threading.Thread(
        target=run_webhooks, args=(runtime, stop), name="webhooks", daemon=True
    )
    thread.start()
    return thread
