"""Queries over freezes, their lifts, and what the breakers count."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from custody.store.models import (
    Approver,
    Freeze,
    Key,
    LedgerEntry,
    Request,
    Unfreeze,
    UnfreezeApproval,
    Wallet,
)

PENDING = "pending"
# Intake stores its decision as sorted JSON, so a policy denial always starts like this; the
# signer's re-check never writes a deny there (it moves the request instead).
_DENIED_PREFIX = json.dumps({"decision": "deny"}, sort_keys=True)[:-1]


def active(session: Session) -> list[Freeze]:
    """Every freeze in force, oldest first."""
    query = select(Freeze).where(Freeze.lifted_at.is_(None)).order_by(Freeze.id)
    return list(session.execute(query).scalars())


def active_in_scope(session: Session, wallet_id: int | None) -> list[Freeze]:
    """The active freezes of exactly this scope: the installation (None) or one wallet."""
    scope = Freeze.wallet_id.is_(None) if wallet_id is None else Freeze.wallet_id == wallet_id
    query = select(Freeze).where(Freeze.lifted_at.is_(None), scope).order_by(Freeze.id)
    return list(session.execute(query).scalars())


def identical_active(
    session: Session, *, wallet_id: int | None, source: str, reason: str
) -> Freeze | None:
    for row in active_in_scope(session, wallet_id):
        if row.source == source and row.reason == reason:
            return row
    return None


def active_from(session: Session, *, source: str, wallet_id: int | None) -> Freeze | None:
    for row in active_in_scope(session, wallet_id):
        if row.source == source:
            return row
    return None


def ledger_entries(session: Session, kinds: tuple[str, ...]) -> list[tuple[str, bytes]]:
    """(kind, bytes) of every ledger entry of these kinds, oldest first (freezes and lifts are
    few; the `(kind, time)` index finds them)."""
    query = (
        select(LedgerEntry.kind, LedgerEntry.entry)
        .where(LedgerEntry.kind.in_(kinds))
        .order_by(LedgerEntry.index)
    )
    return [(kind, entry) for kind, entry in session.execute(query).all()]


def ledger_entries_newest_first(session: Session, kind: str) -> list[bytes]:
    query = select(LedgerEntry.entry).where(LedgerEntry.kind == kind)
    return list(session.execute(query.order_by(LedgerEntry.index.desc())).scalars())


def entries_by(session: Session, kind: str, actor: str, since: datetime) -> list[bytes]:
    """The bytes of the entries of `kind` by `actor` recorded after `since` (by the columns
    written with each entry; the caller checks the bytes)."""
    query = select(LedgerEntry.entry).where(
        LedgerEntry.kind == kind, LedgerEntry.time > since, LedgerEntry.actor == actor
    )
    return list(session.execute(query).scalars())


def highest_id(session: Session) -> int:
    return int(session.execute(select(func.coalesce(func.max(Freeze.id), 0))).scalar_one())


def wallet_ids_named(session: Session, names: Iterable[str]) -> dict[str, int]:
    wanted = list(set(names))
    if not wanted:
        return {}
    rows = session.execute(select(Wallet.name, Wallet.id).where(Wallet.name.in_(wanted)))
    return dict(rows.all())


def by_id(session: Session, freeze_id: int, *, for_update: bool = False) -> Freeze | None:
    query = select(Freeze).where(Freeze.id == freeze_id)
    if for_update:
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def recent(session: Session, limit: int) -> list[Freeze]:
    """Active and lifted freezes, newest first."""
    query = select(Freeze).order_by(Freeze.id.desc()).limit(limit)
    return list(session.execute(query).scalars())


def wallet_names(session: Session, ids: Iterable[int]) -> dict[int, str]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    rows = session.execute(select(Wallet.id, Wallet.name).where(Wallet.id.in_(wanted)))
    return dict(rows.all())


def key_tokens(session: Session) -> dict[int, str]:
    """The token of each wallet's key (`keys.token`), by wallet id."""
    rows = session.execute(select(Wallet.id, Key.token).join(Key, Key.id == Wallet.key_id))
    return dict(rows.all())


def pending_unfreeze(session: Session, freeze_id: int) -> Unfreeze | None:
    query = select(Unfreeze).where(Unfreeze.freeze_id == freeze_id, Unfreeze.state == PENDING)
    return session.execute(query).scalar_one_or_none()


def pending_unfreezes(session: Session, freeze_ids: Iterable[int]) -> dict[int, Unfreeze]:
    wanted = list(set(freeze_ids))
    if not wanted:
        return {}
    query = select(Unfreeze).where(Unfreeze.freeze_id.in_(wanted), Unfreeze.state == PENDING)
    return {row.freeze_id: row for row in session.execute(query).scalars()}


def unfreeze_by_id(session: Session, unfreeze_id: int, *, for_update: bool) -> Unfreeze:
    query = select(Unfreeze).where(Unfreeze.id == unfreeze_id)
    if for_update:
        query = query.with_for_update()
    return session.execute(query).scalar_one()


def decisions_on(session: Session, unfreeze_id: int) -> list[tuple[UnfreezeApproval, Approver]]:
    """Every decision on an unfreeze with its approver, in the order they came."""
    rows = session.execute(
        select(UnfreezeApproval, Approver)
        .join(Approver, Approver.id == UnfreezeApproval.approver_id)
        .where(UnfreezeApproval.unfreeze_id == unfreeze_id)
        .order_by(UnfreezeApproval.id)
    ).all()
    return [(approval, approver) for approval, approver in rows]


def asked_amounts(session: Session, wallet_id: int, asset: str, since: datetime) -> list[str]:
    """What the requests for this wallet and asset created after `since` asked for, leaving out
    those the policy denied at intake (they could never be signed)."""
    query = select(Request.amount).where(
        Request.wallet_id == wallet_id,
        Request.asset == asset,
        Request.created_at > since,
        ~Request.policy_decision.startswith(_DENIED_PREFIX, autoescape=True),
    )
    return list(session.execute(query).scalars())
