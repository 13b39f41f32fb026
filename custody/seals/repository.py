"""Queries for the configuration document and its seals."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.ledger.events import EventKind
from custody.policy_versions.states import APPLIED
from custody.store.models import (
    Approver,
    ApproverGroup,
    ApproverGroupSettings,
    Asset,
    Chain,
    Client,
    ConfigurationSeal,
    Key,
    LedgerEntry,
    PolicyVersion,
    ReferencePrice,
    Venue,
    Wallet,
    WebauthnCredential,
)


def chains(session: Session) -> Sequence[Chain]:
    return session.execute(select(Chain).order_by(Chain.id)).scalars().all()


def assets(session: Session) -> Sequence[Asset]:
    return session.execute(select(Asset).order_by(Asset.id)).scalars().all()


def venues(session: Session) -> Sequence[Venue]:
    return session.execute(select(Venue).order_by(Venue.id)).scalars().all()


def prices(session: Session) -> Sequence[ReferencePrice]:
    return session.execute(select(ReferencePrice).order_by(ReferencePrice.id)).scalars().all()


def keys(session: Session) -> Sequence[Key]:
    return session.execute(select(Key).order_by(Key.id)).scalars().all()


def wallets(session: Session) -> Sequence[Wallet]:
    return session.execute(select(Wallet).order_by(Wallet.id)).scalars().all()


def clients(session: Session) -> Sequence[Client]:
    return session.execute(select(Client).order_by(Client.id)).scalars().all()


def approvers(session: Session) -> Sequence[Approver]:
    return session.execute(select(Approver).order_by(Approver.id)).scalars().all()


def memberships(session: Session) -> Sequence[ApproverGroup]:
    return session.execute(select(ApproverGroup)).scalars().all()


def group_settings(session: Session) -> Sequence[ApproverGroupSettings]:
    return session.execute(select(ApproverGroupSettings)).scalars().all()


def passkeys(session: Session) -> Sequence[WebauthnCredential]:
    return session.execute(select(WebauthnCredential)).scalars().all()


def applied_policies(session: Session) -> Sequence[PolicyVersion]:
    return (
        session.execute(
            select(PolicyVersion).where(PolicyVersion.state == APPLIED).order_by(PolicyVersion.id)
        )
        .scalars()
        .all()
    )


def newest_seal(session: Session) -> ConfigurationSeal | None:
    return session.execute(
        select(ConfigurationSeal).order_by(ConfigurationSeal.epoch.desc()).limit(1)
    ).scalar_one_or_none()


def newest_sealed_entry(session: Session) -> dict[str, Any] | None:
    """The data of the newest `configuration.sealed` ledger entry, or None."""
    entry = session.execute(
        select(LedgerEntry.entry)
        .where(LedgerEntry.kind == EventKind.CONFIGURATION_SEALED.value)
        .order_by(LedgerEntry.index.desc())
        .limit(1)
    ).scalar_one_or_none()
    if entry is None:
        return None
    data = json.loads(entry).get("data")
    return data if isinstance(data, dict) else None
