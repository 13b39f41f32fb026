"""Queries over webhook deliveries, the dispatcher's cursor and the requests it describes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from custody.errors import NotFound
from custody.store.models import (
    ApproverGroupSettings,
    Client,
    LedgerEntry,
    Request,
    Wallet,
    WebhookCursor,
    WebhookDelivery,
)


def locked_cursor(session: Session) -> WebhookCursor:
    """The single cursor row, locked until commit (SQLite's write transaction already is)."""
    cursor = session.execute(
        select(WebhookCursor).where(WebhookCursor.id == 1).with_for_update()
    ).scalar_one_or_none()
    if cursor is None:  # a database created before the migration seeded it
        cursor = WebhookCursor(id=1, next_index=0)
        session.add(cursor)
        session.flush()
    return cursor


def entries_from(session: Session, start: int, limit: int) -> list[LedgerEntry]:
    return list(
        session.execute(
            select(LedgerEntry)
            .where(LedgerEntry.index >= start)
            .order_by(LedgerEntry.index)
            .limit(limit)
        ).scalars()
    )


def requests_with_context(
    session: Session, request_ids: Iterable[str]
) -> dict[str, tuple[Request, str, str | None]]:
    """request id -> (request, wallet name, the client's webhook URL)."""
    rows = session.execute(
        select(Request, Wallet.name, Client.webhook_url)
        .join(Wallet, Wallet.id == Request.wallet_id)
        .join(Client, Client.id == Request.client_id)
        .where(Request.id.in_(list(set(request_ids))))
    ).all()
    return {r.id: (r, name, url) for r, name, url in rows}


def group_urls(session: Session, groups: Iterable[str]) -> dict[str, str]:
    rows = session.execute(
        select(ApproverGroupSettings.group, ApproverGroupSettings.notify_url).where(
            ApproverGroupSettings.group.in_(list(groups)),
            ApproverGroupSettings.notify_url.is_not(None),
        )
    ).all()
    return {group: url for group, url in rows if url}


def client_urls(session: Session) -> dict[str, str]:
    """client id -> webhook URL, for every enabled client that has one."""
    rows = session.execute(
        select(Client.id, Client.webhook_url).where(
            Client.webhook_url.is_not(None), Client.disabled_at.is_(None)
        )
    ).all()
    return {client_id: url for client_id, url in rows if url}


def every_group_url(session: Session) -> dict[str, str]:
    rows = session.execute(
        select(ApproverGroupSettings.group, ApproverGroupSettings.notify_url).where(
            ApproverGroupSettings.notify_url.is_not(None)
        )
    ).all()
    return {group: url for group, url in rows if url}


def insert_deliveries(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert, skipping any (ledger_index, target) already queued: a re-run adds nothing."""
    if not rows:
        return
    bind = session.get_bind()
    insert = pg_insert if bind.dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(WebhookDelivery).on_conflict_do_nothing(index_elements=["ledger_index", "target"]),
        rows,
    )


def due_heads(
    session: Session, now: datetime, limit: int, *, skip_locked: bool
) -> list[WebhookDelivery]:
    """Per target, its oldest pending delivery, if that one is due: later ones wait for it."""
    heads = (
        select(
            WebhookDelivery.target.label("target"),
            func.min(WebhookDelivery.ledger_index).label("first"),
        )
        .where(WebhookDelivery.status == "pending")
        .group_by(WebhookDelivery.target)
        .subquery()
    )
    query = (
        select(WebhookDelivery)
        .join(
            heads,
            and_(
                WebhookDelivery.target == heads.c.target,
                WebhookDelivery.ledger_index == heads.c.first,
            ),
        )
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.ledger_index)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True, of=WebhookDelivery)
    return list(session.execute(query).scalars())


def delivery(session: Session, delivery_id: int, *, for_update: bool = False) -> WebhookDelivery:
    query = select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
    if for_update:
        query = query.with_for_update()
    found = session.execute(query).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no webhook delivery {delivery_id}")
    return found


def deliveries(session: Session, *, status: str | None, limit: int) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return list(session.execute(query).scalars())


def cursor_position(session: Session) -> int:
    position = session.execute(
        select(WebhookCursor.next_index).where(WebhookCursor.id == 1)
    ).scalar_one_or_none()
    return int(position or 0)
