"""Webhook settings (client and group URLs), the delivery log, and putting a delivery back.

Every settings change is ledgered in its own transaction with the change (invariant 3).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.errors import NotFound, ValidationFailed
from custody.ledger import service as ledger
from custody.ledger.events import EventKind
from custody.names import validate_name
from custody.store.base import utcnow
from custody.store.models import ApproverGroupSettings, Client, WebhookDelivery
from custody.webhooks import repository

STATUSES = ("pending", "delivered", "failed")
MAX_URL_LENGTH = 500


class InvalidWebhookUrl(ValidationFailed):
    slug = "invalid-webhook-url"


def validate_url(url: str) -> str:
    """An absolute http(s) URL with a host, without credentials (they would reach logs)."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhookUrl(f"webhook URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidWebhookUrl("webhook URL is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidWebhookUrl("webhook URL must start with http:// or https://")
    if not parts.hostname:
        raise InvalidWebhookUrl("webhook URL needs a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookUrl("webhook URL must not contain credentials")
    if any(c.isspace() for c in url) or port == 0:
        raise InvalidWebhookUrl("webhook URL is not a valid URL")
    return url


def set_client_webhook(session: Session, *, name: str, url: str | None, actor: str) -> Client:
    client = session.execute(select(Client).where(Client.name == name)).scalar_one_or_none()
    if client is None:
        raise NotFound(f"unknown client {name!r}")
    client.webhook_url = None if url is None else validate_url(url)
    ledger.append(
        session,
        EventKind.CLIENT_WEBHOOK_SET,
        actor,
        {"client": client.id, "name": client.name, "url": client.webhook_url},
    )
    return client


def set_group_url(
    session: Session, *, group: str, url: str | None, actor: str
) -> ApproverGroupSettings:
    validate_name("group", group)
    checked = None if url is None else validate_url(url)
    settings = session.get(ApproverGroupSettings, group)
    if settings is None:
        settings = ApproverGroupSettings(group=group, notify_url=checked)
        session.add(settings)
    else:
        settings.notify_url = checked
    session.flush()
    ledger.append(
        session, EventKind.WEBHOOKS_GROUP_URL_SET, actor, {"group": group, "url": checked}
    )
    return settings


def retry(session: Session, delivery_id: int) -> WebhookDelivery:
    """Put a delivery (usually a `failed` one) back in the queue, due now, attempts from zero."""
    row = repository.delivery(session, delivery_id, for_update=True)
    if row.status == "delivered":
        raise ValidationFailed(f"webhook delivery {delivery_id} was already delivered")
    row.status = "pending"
    row.attempts = 0
    row.next_attempt_at = utcnow()
    return row


def log_rows(session: Session, *, status: str | None, limit: int = 200) -> list[dict[str, Any]]:
    if status is not None and status not in STATUSES:
        raise ValidationFailed(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    return [describe(row) for row in repository.deliveries(session, status=status, limit=limit)]


def describe(row: WebhookDelivery) -> dict[str, Any]:
    try:
        event = json.loads(row.body).get("event")
    except ValueError:
        event = None
    return {
        "id": row.id,
        "ledger_index": row.ledger_index,
        "target": row.target,
        "url": row.url,
        "event": event,
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "created_at": _iso(row.created_at),
        "next_attempt_at": _iso(row.next_attempt_at) if row.status == "pending" else None,
        "delivered_at": _iso(row.delivered_at),
    }


def _iso(moment: Any) -> str | None:
    return None if moment is None else str(moment.isoformat())
