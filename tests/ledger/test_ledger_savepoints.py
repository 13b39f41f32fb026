"""Ledger appends are buffered until the outermost commit; savepoints must not lose or leak them
(SQLAlchemy fires commit and rollback events for savepoints too)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from custody.ledger import service as ledger
from custody.ledger.check import check
from custody.ledger.checkpoints import make_checkpoint, runtime_identity
from custody.ledger.events import EventKind
from custody.ledger.service import LedgerStateLost
from custody.store.models import LedgerEntry
from tests.support.installation import Installation


def count(inst: Installation) -> int:
    with inst.runtime.db.read() as session:
        return int(session.execute(select(func.count()).select_from(LedgerEntry)).scalar_one())


def signed_and_verified(inst: Installation) -> None:
    """A checkpoint over what committed, then verify holds the whole ledger to it."""
    rt = inst.runtime
    ident = runtime_identity(rt)
    make_checkpoint(rt.db, rt.token(), ident, on_fork=None)
    with rt.db.read() as session:
        report = check(session, ident.verifier)
    assert report.fault is None
    assert report.unsigned == 0


def append(session: object, n: str) -> None:
    ledger.append(session, EventKind.LEDGER_INITIALISED, "test", {"n": n})  # type: ignore[arg-type]


def test_entries_around_committed_savepoints_all_commit(installation: Installation) -> None:
    before = count(installation)
    with installation.runtime.db.write() as session:
        ledger.lock(session)
        with session.begin_nested():
            pass
        append(session, "a")
        with session.begin_nested():
            append(session, "b")
        append(session, "c")
    assert count(installation) == before + 3
    signed_and_verified(installation)


def test_a_savepoint_rollback_without_entries_is_harmless(installation: Installation) -> None:
    before = count(installation)

    def inner_failure(session: object) -> None:
        with session.begin_nested():  # type: ignore[attr-defined]
            raise RuntimeError("inner failure")

    with installation.runtime.db.write() as session:
        append(session, "d")
        with pytest.raises(RuntimeError):
            inner_failure(session)
        append(session, "e")
    assert count(installation) == before + 2


def test_entries_inside_a_rolled_back_savepoint_refuse_the_commit(
    installation: Installation,
) -> None:
    before = count(installation)

    def inner_failure(session: object) -> None:
        with session.begin_nested():  # type: ignore[attr-defined]
            append(session, "g")
            raise RuntimeError("inner failure")

    def transaction() -> None:
        with installation.runtime.db.write() as session:
            append(session, "f")
            with pytest.raises(RuntimeError):
                inner_failure(session)

    with pytest.raises(LedgerStateLost):
        transaction()
    assert count(installation) == before
    signed_and_verified(installation)
