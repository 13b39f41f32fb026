"""Queries for the configuration document and its seals."""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Row, Select, Table, bindparam, select
from sqlalchemy.orm import Session, defer

from custody.ledger.events import EventKind
from custody.policy_versions.states import APPLIED
from custody.store.base import Base
from custody.store.models import (
    Approval,
    ConfigurationSeal,
    LedgerEntry,
    PolicyVersion,
)

_HOLD = "custody.seals.hold"


@contextmanager
def holding(session: Session) -> Iterator[None]:
    """Read the configuration rows FOR SHARE meanwhile (PostgreSQL; SQLite's write transaction
    excludes every other writer anyway): the signer's later reads in the same transaction then
    see the rows its seal check saw, because an UPDATE or DELETE of them waits for its commit.
    Under READ COMMITTED each statement sees what committed before it, so without this an edit
    that lands between the check and a later read would be used unchecked."""
    session.info[_HOLD] = True
    try:
        yield
    finally:
        session.info.pop(_HOLD, None)


def _held(session: Session) -> bool:
    return bool(session.info.get(_HOLD))


def rows(session: Session, model: type[Base]) -> Sequence[Row[Any]]:
    """Every row of a configuration table, as plain rows: the signer reads them all on each
    claim, and Core rows cost a fraction of ORM objects."""
    return session.connection().execute(_all_rows(model, held=_held(session))).all()


def rows_where(
    session: Session, model: type[Base], column: str, values: Collection[object]
) -> Sequence[Row[Any]]:
    """The rows of a configuration table whose `column` is one of `values`."""
    if not values:
        return []
    query = _rows_where(model, column, held=_held(session))
    return session.connection().execute(query, {"values": list(values)}).all()


# The statements are built once per table (and lock mode): the signer runs a dozen of them on
# every claim, and building one and its cache key cost as much as running it.
@functools.cache
def _all_rows(model: type[Base], *, held: bool) -> Select[Any]:
    table = _table(model)
    query = select(table)
    if "id" in table.c:
        query = query.order_by(table.c.id)
    return _locked(query, held=held)


@functools.cache
def _rows_where(model: type[Base], column: str, *, held: bool) -> Select[Any]:
    table = _table(model)
    query = select(table).where(table.c[column].in_(bindparam("values", expanding=True)))
    return _locked(query, held=held)


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _locked(query: Select[Any], *, held: bool) -> Select[Any]:
    """FOR SHARE while `holding` (custody.seals.gate's check, on PostgreSQL)."""
    return query.with_for_update(read=True) if held else query


def approvers_of(session: Session, request_id: str) -> frozenset[str]:
    """Everyone with a decision stored on the request, enabled or not."""
    query = select(Approval.approver_id).where(Approval.request_id == request_id).distinct()
    return frozenset(session.execute(query).scalars())


def applied_policies(session: Session) -> Sequence[Row[Any]]:
    return session.connection().execute(_applied_policies(held=_held(session))).all()


@functools.cache
def _applied_policies(*, held: bool) -> Select[Any]:
    table = _table(PolicyVersion)
    query = (
        select(table.c.id, table.c.digest, table.c.applied_at)
        .where(table.c.state == APPLIED)
        .order_by(table.c.id)
    )
    return _locked(query, held=held)


def newest_seal(session: Session) -> ConfigurationSeal | None:
    """The newest seal; its document (large) is loaded only when read."""
    return session.execute(
        select(ConfigurationSeal)
        .options(defer(ConfigurationSeal.document))
        .order_by(ConfigurationSeal.epoch.desc())
        .limit(1)
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
